"""Planning ``make synth-browse``: which chains of facts become questions.

:func:`plan_items` is one sequential sampler (deterministic in its random stream). At scale the seeds are
split into shards (:func:`plan_shards`, ``browse.plan_shard_size`` seeds each) that workers sample on
their own (:func:`plan_shard`); the first shard draws ``browse.seed``'s stream, so a run of at most one
shard plans exactly as the single sampler. Across shards, duplicate chains and the per-pattern and
per-answer caps are enforced by :mod:`crucible.pipelines.browse.transforms_plan`; the hub cap holds per shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from crucible.pipelines.browse import synth as S
from crucible.pipelines.browse.kg.textlinks import TEXT_HOP_WEIGHT, chain_preference, text_index
from crucible.pipelines.options import BrowseOptions


class DropKind(str, Enum):
    """Why planning dropped a sampled structure (counted in the run summary)."""

    PATTERN = "structural duplicate"
    ANSWER = "answer duplicate"
    HUB = "hub cap"
    TAIL = "same tail"


@dataclass(frozen=True)
class PlanShard:
    """Seeds ``[start, stop)`` of a run, sampled by one worker."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Planned:
    """One sampled structure with where it came from: ``item`` (a question to make) or ``drop`` (a
    failure row's payload), its shard and its attempt number there (the order the caps keep), and for
    an item the answer it asks for (``entity id`` or ``entity id#attribute``)."""

    key: str
    shard: int
    seq: int
    item: dict | None = None
    drop: dict | None = None
    answer: str | None = None
    rank: int | None = None  # an item's place among its shard's items (run.limit keeps the first ones)

    @property
    def order(self) -> tuple[int, int]:
        return (self.shard, self.seq)


def plan_shards(opts: BrowseOptions) -> list[PlanShard]:
    """``ceil(seeds / plan_shard_size)`` shards covering seeds 0..seeds (a tiny list: O(#shards))."""
    size, n = int(opts.plan_shard_size), int(opts.seeds)
    return [PlanShard(i, start, min(n, start + size)) for i, start in enumerate(range(0, n, size))]


def shard_rng(opts: BrowseOptions, shard: PlanShard) -> random.Random:
    """The first shard draws ``browse.seed``'s stream (as one sampler did); shard i > 0 its own."""
    return random.Random(int(opts.seed) if shard.index == 0 else f"{int(opts.seed)}/{shard.index}")


def hub_cap(opts: BrowseOptions, seeds: int | None = None) -> int:
    """Most chains one entity may be on: ``max_share_per_entity`` of ``seeds`` (default ``opts.seeds``), at
    least 1."""
    return max(1, int(float(opts.max_share_per_entity) * int(opts.seeds if seeds is None else seeds) + 1e-9))


def chain_tail(item: dict) -> str:
    """A chain's reasoning tail: its last two hops (a two-hop chain: its last). Two chains with one tail reach
    one answer by the same last steps and differ only in how they start ("where hafnium / aluminium was
    discovered" -> Denmark -> Germany -> Berlin; "where Daejeon is" -> South Korea -> North Korea ->
    Pyongyang -> its airport, or that airport's IATA code from South Korea on): one question to a reader."""
    return json.dumps(_tail(item["chain"]))


def _tail(chain: list) -> list:
    return chain[max(1, len(chain) - 2):] if len(chain) > 1 else chain


def tail_pattern(item: dict) -> str:
    """The relations of a chain's tail (:func:`chain_tail`: "the capital of a country bordering ..."): more than
    :func:`tail_pattern_cap` chains sharing it read as one template with the start swapped."""
    return json.dumps([r for _s, r, _o in _tail(item["chain"])])


def tail_pattern_cap(opts: BrowseOptions, seeds: int | None = None) -> int:
    """Most chains one :func:`tail_pattern` may end: ``max_share_per_tail_pattern`` of ``seeds`` (default
    ``opts.seeds``), rounded up."""
    return max(1, math.ceil(float(opts.max_share_per_tail_pattern) * int(opts.seeds if seeds is None else seeds) - 1e-9))


def plan_items(graph, opts: BrowseOptions) -> tuple[list[dict], list[dict]]:
    """Sample ``opts.seeds`` structures as one sampler, deterministic in ``opts.seed``. Returns (items, drops).
    Drops (each with ``kind`` a :class:`DropKind` value): structural duplicates (more than
    ``max_per_pattern`` per relation pattern, or :func:`tail_pattern_cap` per :func:`tail_pattern`),
    answer duplicates (more than ``max_per_answer`` questions with one answer), same-tail drops (more
    than ``max_per_tail`` per :func:`chain_tail`) and hub-cap drops (a chain through an entity already on
    :func:`hub_cap` chains). Entities at the cap are also walked around while sampling, and no hop
    is one a reader does not need (``skip_trivial_hops``). A share ``attribute_answer_share`` of
    the items asks for an exact attribute of the final entity (a code, a year, a count) instead of
    the entity; with ``inverse_hops`` one-valued inverse hops are walked too ("the airport serving
    X"). Each item: {key, chain: [[s, r, o], ...], start, pattern, answer_attr}."""
    shard = PlanShard(0, 0, int(opts.seeds))
    planned = list(plan_shard(graph, opts, shard))
    return [p.item for p in planned if p.item is not None], [p.drop for p in planned if p.drop is not None]


def plan_shard(graph, opts: BrowseOptions, shard: PlanShard) -> Iterator[Planned]:
    """The structures of one shard (items and drops, in the sampler's order)."""
    rng = shard_rng(opts, shard)
    target = shard.size
    caps = (int(opts.max_per_pattern), tail_pattern_cap(opts, target), int(opts.max_per_answer), int(opts.max_per_tail))
    per_entity = hub_cap(opts, target)
    pools = S.seed_pools(graph, list(opts.seed_types))
    out: list[Planned] = []
    items: list[tuple[Planned, set]] = []
    seen_chains: set[str] = set()
    patterns: Counter = Counter()
    answers: Counter = Counter()
    tails: Counter = Counter()
    tail_patterns: Counter = Counter()
    on_chains: Counter = Counter()
    blocked: set[str] = set()
    attempts = grounded = 0
    need_text = math.ceil(float(opts.text_grounded_share) * target - 1e-9)
    while len(items) < target and attempts < target * 30:
        attempts += 1
        require = grounded < need_text and attempts <= target * 20  # then any chain: never fewer items
        s = _sample_one(graph, opts, rng, pools, frozenset(blocked), require)
        if s is None or s["key"] in seen_chains:
            continue
        key, pat, answer, nodes = s["key"], s["item"]["pattern"], s["answer"], s["nodes"]
        seen_chains.add(key)
        tail, tpat = chain_tail(s["item"]), tail_pattern(s["item"])
        why = _cap_reason((patterns, tail_patterns, answers, tails), (pat, tpat, answer, tail), caps, on_chains, nodes,
                          per_entity)
        if why:
            out.append(Planned(key, shard.index, attempts, drop={"key": key, **why, "pattern": pat}))
            continue
        patterns[pat] += 1
        answers[answer] += 1
        tails[tail] += 1
        tail_patterns[tpat] += 1
        on_chains.update(nodes)
        blocked.update(e for e in nodes if on_chains[e] >= per_entity)
        grounded += s["text_grounded"]
        p = Planned(key, shard.index, attempts, item=s["item"], answer=answer)
        out.append(p)
        items.append((p, nodes))
    for p in _share_cap(opts, items):  # fewer items than seeds: the cap as a share of the items planned
        out.remove(p[0])
        out.append(p[1])
    ranks = {id(p): r for r, p in enumerate(p for p in out if p.item is not None)}
    return iter([dataclasses.replace(p, rank=ranks[id(p)]) if p.item is not None else p for p in out])


def _sample_one(graph, opts: BrowseOptions, rng: random.Random, pools, blocked: frozenset,
                require_text: bool = False) -> dict | None:
    """One sampled chain as a planned item; with ``require_text`` a text-grounded one or None."""
    hops = rng.randint(int(opts.min_hops), int(opts.max_hops))
    hops = int(opts.min_hops) if require_text else hops  # longer text-grounded chains are rare in the graph
    want_attr = rng.random() < float(opts.attribute_answer_share)
    text = float(opts.text_grounded_share) > 0
    chain = S.sample_chain_weighted(graph, rng, hops, pools, blocked=blocked, skip_trivial=bool(opts.skip_trivial_hops),
                                    inverse=bool(opts.inverse_hops), text_weight=TEXT_HOP_WEIGHT if text else 1.0)
    grounded = text and chain is not None and chain_preference(text_index(graph), chain)[0]
    if chain is None or (require_text and not grounded):
        return None
    triples = [[t.subject, t.relation, t.object] for t in chain]
    start = S.chain_start(chain)
    draft = S.draft_from_chain(chain, None, start)
    answer_attr = None
    if want_attr:
        options = S.answer_attr_options(graph, draft.answer_id)
        answer_attr = rng.choice(options)[0] if options else None
    digest = hashlib.sha256(json.dumps([triples, answer_attr] if answer_attr else triples).encode()).hexdigest()[:16]
    draft = S.draft_from_chain(chain, answer_attr, start)
    key = f"q-{digest}"
    return {"key": key, "answer": draft.answer_id + (f"#{answer_attr}" if answer_attr else ""), "text_grounded": grounded,
            "nodes": S.chain_entities(draft),
            "item": {"key": key, "chain": triples, "start": start, "pattern": S.pattern_hash(draft),
                     "answer_attr": answer_attr}}


PATTERN_REASON = "structural duplicate (relation pattern already used {most} times)"
TAIL_PATTERN_REASON = "structural duplicate (the relations of the last two hops already used {most} times)"
ANSWER_REASON = "answer duplicate ({answer} already the answer of {most} questions)"
TAIL_REASON = "same tail (the chain's last two hops already asked {most} time(s))"


def _cap_reason(counts, keys, caps, on_chains, nodes, per_entity) -> dict | None:
    """The first cap a sampled chain breaks: (pattern, tail pattern, answer, tail) counts against their caps, then
    the hub cap."""
    kinds = ((DropKind.PATTERN, PATTERN_REASON), (DropKind.PATTERN, TAIL_PATTERN_REASON),
             (DropKind.ANSWER, ANSWER_REASON), (DropKind.TAIL, TAIL_REASON))
    for count, key, most, (kind, reason) in zip(counts, keys, caps, kinds):
        if count[key] >= most:
            return {"kind": kind.value, "reason": reason.format(most=most, answer=keys[2])}
    hub = sorted(e for e in nodes if on_chains[e] >= per_entity)
    if hub:
        return {"kind": DropKind.HUB.value, "reason": f"hub cap ({hub[0]} already on {per_entity} chains)"}
    return None


def _share_cap(opts: BrowseOptions, items: list[tuple[Planned, set]]) -> list[tuple[Planned, Planned]]:
    """(item, its drop) for the latest items through an entity on more than ``max_share_per_entity`` of
    the items actually planned."""
    moved = []
    while items:
        cap = max(1, int(float(opts.max_share_per_entity) * len(items) + 1e-9))
        c = Counter(e for _, nodes in items for e in nodes)
        eid, n = c.most_common(1)[0]
        if n <= cap:
            break
        p, _ = next(x for x in reversed(items) if eid in x[1])
        items = [x for x in items if x[0] is not p]
        drop = {"key": p.key, "kind": DropKind.HUB.value,
                "reason": f"hub cap ({eid} on {n} of {len(items) + 1} planned chains)", "pattern": p.item["pattern"]}
        moved.append((p, Planned(p.key, p.shard, p.seq, drop=drop)))
    return moved


def hub_concentration(chains: Sequence[set[str]] | Sequence[Sequence[str]]) -> dict:
    """The entity on most chains and its share: ``{"entity", "chains", "share", "n"}`` (chains =
    entity sets, e.g. :func:`synth.chain_entities` of each question)."""
    c: Counter = Counter()
    for nodes in chains:
        c.update(set(nodes))
    if not c:
        return {"entity": None, "chains": 0, "share": 0.0, "n": len(chains)}
    eid, n = c.most_common(1)[0]
    return {"entity": eid, "chains": n, "share": round(n / len(chains), 3), "n": len(chains)}
