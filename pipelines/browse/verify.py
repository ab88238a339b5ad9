"""Answer verification: rules, then the graph, then an LLM judge that sees the evidence.

Non-symmetric by design. In order (docs/browse-env.md, "Verification order"):

1. detectors: empty prediction, answer only inside the reasoning, hedge, list of candidates;
2. the graph (when a resolver is given): an answer that resolves to the gold entity is correct
   (source ``rule``); one that resolves to a *different* entity is incorrect whatever a judge would
   say (source ``graph``, the entity is recorded). A gold without a graph id is resolved from its
   text first (``pipelines/browse/ground.py``);
3. rules: exact match with a gold name after normalization, numbers (years, dates, counts and
   identifiers exactly; a relative tolerance only for a measured quantity), the gold stated whole
   inside a short answer;
4. the judge, told what kind of thing is asked and shown the evidence; its "correct" is re-checked
   by the hack detectors, so a lenient or fooled judge cannot let a hedge or a list through.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

VERDICTS = ("correct", "incorrect", "not_attempted")

# The judge answers one question: does the committed final answer mean the same as a gold?
# (Hedges, lists and answers hidden in the reasoning are decided by the rules before it.)
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "equivalent": {"type": "string", "enum": ["yes", "no"]},
        "reason": {"type": "string", "maxLength": 120},
    },
    "required": ["equivalent", "reason"],
    "additionalProperties": False,
}

# A judge call: (messages, json schema) -> parsed object or None when the model failed.
JudgeFn = Callable[[list[dict], dict], "dict | None"]


class Source(str, Enum):
    """Who decided a verdict (``verdict_source`` of a trajectory row)."""

    RULE = "rule"    # deterministic rule, including "resolves to the gold entity"
    GRAPH = "graph"  # the answer resolves to another graph entity: incorrect, no judge asked
    JUDGE = "judge"


class AnswerKind(str, Enum):
    """What kind of value a gold is; decides how numbers compare."""

    ENTITY = "entity"          # a graph entity (city, country, airport, ...)
    YEAR = "year"              # exact
    DATE = "date"              # exact (same calendar day)
    COUNT = "count"            # exact
    IDENTIFIER = "identifier"  # exact (codes, numbers that name things)
    QUANTITY = "quantity"      # a measured quantity: relative tolerance applies
    TEXT = "text"              # free text, no graph entity


# attribute names / answer types that are measured quantities (the only ones with a tolerance)
MEASURED = frozenset({"quantity", "population", "area", "area_km2", "elevation", "elevation_ft", "latitude",
                      "longitude", "length", "height", "distance", "mass", "temperature"})
_KIND_WORDS = {"year": AnswerKind.YEAR, "date": AnswerKind.DATE, "count": AnswerKind.COUNT,
               "number": AnswerKind.COUNT, "identifier": AnswerKind.IDENTIFIER, "code": AnswerKind.IDENTIFIER,
               "text": AnswerKind.TEXT}


def kind_for(answer_type: str | None) -> AnswerKind:
    """The answer kind of an answer type: a measured attribute (population, area_km2, elevation_ft)
    is a quantity; year/date/count/identifier are exact; anything else (city, country, ...) an entity."""
    t = (answer_type or "").strip().lower()
    if t in MEASURED:
        return AnswerKind.QUANTITY
    if t.endswith("_year") or t.endswith(" year"):
        return AnswerKind.YEAR
    return _KIND_WORDS.get(t, AnswerKind.ENTITY if t else AnswerKind.TEXT)


@dataclass(frozen=True)
class Gold:
    """What a prediction is checked against.

    ``names``: the gold's name and aliases. ``entity_id``: the graph entity it is (None: a value, or
    an outside gold whose text the graph check resolves). ``answer_type``: what is asked (the entity's type,
    e.g. ``city``, or a value kind, e.g. ``year``, ``population``); shown to the judge.
    ``kind``: how numbers compare. ``tolerance``: relative tolerance, used only when ``kind`` is
    QUANTITY (None there: the caller's ``rel_tol``)."""

    names: tuple[str, ...]
    entity_id: str | None = None
    answer_type: str | None = None
    kind: AnswerKind = AnswerKind.TEXT
    tolerance: float | None = None

    @classmethod
    def of(cls, gold: Gold | Sequence[str], answer_type: str | None = None, entity_id: str | None = None) -> Gold:
        """A Gold from a Gold or a list of gold strings (kind from ``answer_type``)."""
        if isinstance(gold, Gold):
            return gold
        if isinstance(gold, str):
            gold = [gold]
        return cls(tuple(gold), entity_id, answer_type, kind_for(answer_type) if answer_type else
                   (AnswerKind.ENTITY if entity_id else AnswerKind.TEXT))

    def rel_tol(self, default: float | None) -> float:
        if self.kind is not AnswerKind.QUANTITY:
            return 0.0
        return float(self.tolerance if self.tolerance is not None else (default or 0.0))


def gold_for_entity(graph, eid: str) -> Gold:
    """The Gold of a graph entity: its name and answer aliases, its id and its type."""
    from pipelines.browse.synth import answer_aliases

    e = graph.entities[eid]
    return Gold((e.name, *answer_aliases(graph, eid)), eid, e.type, AnswerKind.ENTITY)


def gold_for_value(value, attr: str, rel_tol: float = 0.0) -> Gold:
    """The Gold of an attribute value (a year, a count, a code, a population): exact unless ``attr``
    is a measured quantity, which gets ``rel_tol``."""
    kind = kind_for(attr)
    text = f"{value:,}" if isinstance(value, int) and kind is not AnswerKind.YEAR else str(value)
    names = tuple(dict.fromkeys([text, str(value)]))
    return Gold(names, None, attr, kind, rel_tol if kind is AnswerKind.QUANTITY else None)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    extracted_answer: str | None
    reason: str
    source: str  # a Source value: "rule", "graph" or "judge"
    resolved_entity: str | None = None  # graph entity the answer resolved to, when the graph decided

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ normalization

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s%.-]")


def normalize(text: str) -> str:
    """Lowercase, strip accents, punctuation, articles and extra spaces."""
    t = text or ""
    if not t.isascii():
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    t = t.lower().replace("&", " and ")
    t = _PUNCT.sub(" ", t)
    t = re.sub(r"(?<!\d)[.-]|[.-](?!\d)", " ", t)  # keep 3.5 and -4, drop other dots/dashes
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


_SCALE = {"thousand": 1e3, "k": 1e3, "million": 1e6, "m": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9,
          "b": 1e9, "trillion": 1e12}
_NUM = re.compile(r"^(?:about |approximately |around |roughly |~)?(-?\d[\d,]*(?:\.\d+)?)\s*([a-z%]*)")


def parse_number(text: str) -> float | None:
    """The number a short answer states ("1,234", "1.2 million", "12k", "48 ft"), else None."""
    t = (text or "").strip().lower().replace("\u2212", "-")
    m = _NUM.match(t)
    if not m:
        return None
    rest = t[m.end():].strip()
    # a number followed by more words that are not a unit/scale is not a numeric answer
    if len(rest.split()) > 2:
        return None
    try:
        value = float(m.group(1).replace(",", ""))
    except ValueError:
        return None
    return value * _SCALE.get(m.group(2), 1.0)


def numbers_match(a: float, b: float, rel_tol: float = 0.0) -> bool:
    """Equal numbers; with ``rel_tol`` > 0 (measured quantities only) within that relative tolerance."""
    if rel_tol <= 0:
        return a == b
    return abs(a - b) <= rel_tol * max(abs(a), abs(b), 1e-9)


def dates_match(a: str, b: str) -> bool | None:
    """Same calendar day (both fully specified dates), False when both parse and differ, None when
    either is not a full date."""
    from datetime import datetime

    from dateutil import parser

    def parse(t):
        try:
            d1 = parser.parse(t, default=datetime(1, 1, 1))
            d2 = parser.parse(t, default=datetime(2, 2, 2))
        except (ValueError, OverflowError):
            return None
        return d1.date() if d1.date() == d2.date() else None

    da, db = parse(a), parse(b)
    if da is None or db is None:
        return None
    return da == db


# ------------------------------------------------------------------ hack detectors

_HEDGES = [
    r"cannot be determined", r"can ?not determine", r"can't (?:be )?determine", r"unable to (?:determine|find|answer)",
    r"not (?:enough|sufficient) information", r"insufficient (?:information|evidence)", r"i (?:do not|don't) know",
    r"\bunknown\b", r"\bunclear\b", r"no (?:definitive|clear|single) answer", r"could not (?:find|determine)",
    r"couldn't (?:find|determine)", r"not (?:possible|able) to (?:determine|say|tell)", r"impossible to (?:say|tell|determine)",
    r"\bnot sure\b", r"^n/a$", r"^none$", r"no answer", r"cannot answer", r"can't answer",
    r"\bi am not certain\b", r"\bhard to say\b", r"\bwithout more (?:information|context)\b",
]
_HEDGE_RE = re.compile("|".join(_HEDGES))
_REASONING_RE = re.compile(r"<think>.*?(?:</think>|$)|<reasoning>.*?(?:</reasoning>|$)", re.S | re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_FINAL_RE = re.compile(r"(?:final answer|answer)\s*(?:is)?\s*[:：]\s*(.+)", re.I)
# strong separators only: "Paris, France" is one answer, "Paris or Lyon" is two
_LIST_SPLIT = re.compile(r"\s+or\s+|\s*;\s*|\s*/\s*|\s*\|\s*|\n+\s*(?:[-*•]|\d+[.)])?\s*|,\s*or\s+|\s+and/or\s+")


def strip_reasoning(text: str) -> str:
    return _REASONING_RE.sub(" ", text or "").strip()


def extract_final_answer(prediction: str) -> str:
    """The final answer a prediction gives: <answer> tags, then 'Final answer:', else the
    text with any reasoning block removed."""
    body = strip_reasoning(prediction)
    m = _ANSWER_TAG.search(body)
    if m:
        return m.group(1).strip()
    m = _FINAL_RE.search(body)
    if m:
        return m.group(1).strip().splitlines()[0].strip()
    return body.strip()


def is_hedge(answer: str) -> bool:
    raw = (answer or "").strip().lower()
    return bool(_HEDGE_RE.search(normalize(answer)) or _HEDGE_RE.search(raw))


def candidates(answer: str) -> list[str]:
    parts = [p.strip(" .") for p in _LIST_SPLIT.split(answer or "")]
    parts = [re.sub(r"^(?:either|maybe|possibly|perhaps|probably)\s+", "", p, flags=re.I) for p in parts]
    return [p for p in parts if p]


def matches_gold(answer: str, golds: Sequence[str], rel_tol: float = 0.0) -> bool:
    na = normalize(answer)
    if not na:
        return False
    for g in golds:
        if na == normalize(g):
            return True
        a_num, g_num = parse_number(answer), parse_number(g)
        if a_num is not None and g_num is not None and numbers_match(a_num, g_num, rel_tol):
            return True
    return False


def _gold_contains_separator(golds: Sequence[str]) -> bool:
    return any(len(candidates(g)) > 1 for g in golds)


def graph_verdict(gold: Gold, answer: str, resolver) -> Verdict | None:
    """The graph's verdict on a committed answer, or None when the graph cannot decide.

    ``resolver`` is a :class:`pipelines.browse.resolve.NameIndex`. Correct when the answer resolves
    to the gold entity (it names the gold by its name or an alias; if that string also names other
    entities, e.g. "Georgia" the country and the state, the question pins down which one is meant).
    Incorrect (source ``graph``) when it resolves only to other entities, when its qualifier rules the
    gold out ("Dublin, UK" for Dublin, Ireland), or when its head names other entities and an
    unknown qualifier cannot bring it back to the gold. Nothing resolved: None (rules, then judge)."""
    if resolver is None:
        return None
    if not gold.entity_id:  # an outside gold: resolved from its text (pipelines/browse/ground.py)
        from pipelines.browse.ground import text_gold_verdict
        return text_gold_verdict(resolver, gold, answer)
    from pipelines.browse.resolve import resolve_detail

    res = resolve_detail(resolver, answer)
    gid = resolver.canon(gold.entity_id)
    if gid in res.ids:
        return Verdict("correct", answer, f"resolves to the gold entity {gid} ({res.how})", Source.RULE.value, gid)
    others = res.ids or (res.unconfirmed if gid not in res.unconfirmed else frozenset())
    if others:
        # record the likeliest meant entity: one of the asked type, else one the gold is located in
        same_type = sorted(o for o in others if resolver.type_of(o) == gold.answer_type)
        related = sorted(o for o in others if resolver.located_in(gid, {o}) or resolver.located_in(o, {gid}))
        pick = (same_type or related or sorted(others))[0]
        names = ", ".join(f"{o} ({resolver.name_of(o)})" for o in sorted(others)[:4])
        return Verdict("incorrect", answer, f"resolves to another graph entity, not the gold {gid}: {names}",
                       Source.GRAPH.value, pick)
    if gid in res.contradicted:
        return Verdict("incorrect", answer, f"names the gold but its qualifier places it elsewhere ({res.how})",
                       Source.GRAPH.value, None)
    return None


def rule_verdict(gold: Gold | Sequence[str], prediction: str, rel_tol: float | None = None,
                 resolver=None) -> Verdict | None:
    """A certain verdict from the detectors, the graph (with ``resolver`` and a gold entity) and the
    rules, or None when the judge must decide. ``rel_tol`` applies only to a measured-quantity gold."""
    gold = Gold.of(gold)
    golds = gold.names
    tol = gold.rel_tol(rel_tol)
    if not (prediction or "").strip():
        return Verdict("not_attempted", None, "empty prediction", "rule")
    answer = extract_final_answer(prediction)
    if not answer:
        if any(normalize(g) and normalize(g) in normalize(prediction) for g in golds):
            return Verdict("not_attempted", None, "answer appears only in the reasoning, no final answer", "rule")
        return Verdict("not_attempted", None, "no final answer outside the reasoning", "rule")
    exact = any(normalize(answer) == normalize(g) for g in golds if normalize(g))
    if is_hedge(answer) and not exact:
        return Verdict("not_attempted", answer, "hedge: the answer declines to commit", "rule")
    cands = candidates(answer)
    if len(cands) > 1 and not exact and not _gold_contains_separator(golds):
        return Verdict("incorrect", answer, f"lists {len(cands)} candidate answers instead of one", "rule")
    if exact:
        return Verdict("correct", answer, "matches a gold answer after normalization", "rule")
    grounded = graph_verdict(gold, answer, resolver)
    if grounded is not None:
        return grounded
    if matches_gold(answer, golds, tol):
        return Verdict("correct", answer, "matches a gold answer after normalization", "rule")
    if gold.kind is AnswerKind.DATE:
        same = [dates_match(answer, g) for g in golds]
        if any(x is True for x in same):
            return Verdict("correct", answer, "the same date as the gold", "rule")
        if same and all(x is False for x in same):
            return Verdict("incorrect", answer, "a different date from the gold (dates match exactly)", "rule")
    a_num = parse_number(answer)
    if a_num is not None and all(parse_number(g) is not None for g in golds):
        how = f"outside the {tol:.0%} tolerance of a measured quantity" if tol else \
            f"not equal to the gold ({gold.kind.value}: numbers match exactly)"
        return Verdict("incorrect", answer, f"numeric answer {how}", "rule")
    hit = contains_gold(answer, golds) if not _other_numbers(answer, golds) else None
    if hit:
        return Verdict("correct", answer, f"states the gold answer {hit!r} in a short answer", "rule")
    return None


_EXACT_KINDS = (AnswerKind.YEAR, AnswerKind.DATE, AnswerKind.COUNT, AnswerKind.IDENTIFIER)
_NUMBER_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?")


def _other_numbers(answer: str, golds: Sequence[str]) -> bool:
    """The answer states a number that no gold states ("between 1968 and 1969" for 1968)."""
    gold_nums = {n.replace(",", "") for g in golds for n in _NUMBER_TOKEN.findall(g)}
    return any(n.replace(",", "") not in gold_nums for n in _NUMBER_TOKEN.findall(answer))


_FILLER = {"it", "is", "was", "in", "of", "on", "at", "this", "that", "answer", "final", "located", "called",
           "named", "known", "as", "its", "capital", "city", "country", "state", "which", "federal"}
_NEGATION = {"not", "no", "never", "neither", "nor", "isnt", "isn", "doesn", "except", "wrong", "incorrect", "instead", "rather", "but",
             "however", "unlikely", "maybe", "perhaps", "possibly", "probably"}


def _tokens(text: str) -> list[str]:
    t = unicodedata.normalize("NFKD", text or "")
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().replace("&", " and ")
    return re.findall(r"\w+|[^\w\s]", t)


def contains_gold(answer: str, golds: Sequence[str], max_extra: int = 3) -> str | None:
    """A gold answer stated whole inside a short answer ("Lima, Peru", "It is in Africa",
    "Marie Sklodowska-Curie" for "Marie Curie"): every gold word appears in order, at most
    ``max_extra`` other content words are added, nothing negates it, and no other word is glued
    to the gold span ("South Sudan" is not "Sudan", "New Mexico" is not "Mexico"): those go to
    the judge."""
    toks = _tokens(answer)
    words = [t for t in toks if t[0].isalnum()]
    if _NEGATION & set(words):
        return None
    for g in golds:
        gw = [t for t in _tokens(g) if t[0].isalnum() and t not in ("a", "an", "the")]
        if not gw:
            continue
        pos, i = [], 0
        for w in gw:
            while i < len(toks) and toks[i] != w:
                i += 1
            if i == len(toks):
                break
            pos.append(i)
            i += 1
        if len(pos) != len(gw):
            continue
        extra = [w for w in words if w not in gw and w not in _FILLER and w not in ("a", "an", "the")]
        if len(extra) > max_extra:
            continue
        before = toks[pos[0] - 1] if pos[0] > 0 else None
        after = toks[pos[-1] + 1] if pos[-1] + 1 < len(toks) else None
        glued = [t for t in (before, after)
                 if t is not None and t[0].isalnum() and t not in _FILLER and t not in ("a", "an", "the")]
        if glued:
            continue
        return g
    return None


# ------------------------------------------------------------------ judge

JUDGE_PROMPT_ID = "browse_judge"


def judge_prompt(prompt_id: str = JUDGE_PROMPT_ID):
    """The versioned judge prompt (``configs/prompts/browse_judge.yaml``)."""
    from pipelines.llm.prompts import load_prompt

    return load_prompt(prompt_id)


def build_judge_messages(question: str, gold: Gold | Sequence[str], prediction: str,
                         evidence: Sequence[str] = (), prompt=None) -> list[dict]:
    prompt = prompt or judge_prompt()
    gold = Gold.of(gold)
    return prompt.render(question=question, golds=list(gold.names), evidence=list(evidence)[:8],
                         answer_type=(gold.answer_type or "").replace("_", " "),
                         prediction=extract_final_answer(prediction) or prediction)


def judge_verdict(question: str, gold: Gold | Sequence[str], prediction: str, judge: JudgeFn,
                  evidence: Sequence[str] = (), rel_tol: float | None = None, prompt=None,
                  resolver=None) -> Verdict:
    """Detectors, graph and rules first; the judge for what they cannot decide; the hack detectors
    veto a judge 'correct'. ``resolver`` (a NameIndex) enables the graph check for an entity gold."""
    gold = Gold.of(gold)
    golds = gold.names
    ruled = rule_verdict(gold, prediction, rel_tol, resolver)
    if ruled is not None:
        return ruled
    answer = extract_final_answer(prediction)
    out = judge(build_judge_messages(question, gold, prediction, evidence, prompt), JUDGE_SCHEMA)
    if not out or out.get("equivalent") not in ("yes", "no"):
        return Verdict("incorrect", answer, "judge gave no valid verdict; not counted as correct", "judge")
    reason = str(out.get("reason", ""))[:500]
    if out["equivalent"] == "no":
        return Verdict("incorrect", answer, reason or "judge: not the same as any gold answer", "judge")
    # defense in depth: a judge's "yes" never lets a hedge or a candidate list through
    if is_hedge(answer):
        return Verdict("not_attempted", answer, "judge said equivalent but the answer hedges", "judge")
    if len(candidates(answer)) > 1 and not _gold_contains_separator(golds):
        return Verdict("incorrect", answer, "judge said equivalent but the answer lists candidates", "judge")
    if gold.kind in _EXACT_KINDS and _other_numbers(answer, golds):
        return Verdict("incorrect", answer, f"judge said equivalent but the answer states another number "
                                            f"({gold.kind.value}: exact)", "judge")
    return Verdict("correct", answer, reason or "judge: same as a gold answer", "judge")
