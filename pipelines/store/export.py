"""Exporters: project stored records into the shapes trainers read as they are.

- ``verl``: RL parquet with ``data_source``, ``prompt`` (chat list), ``ability``,
  ``reward_model`` {``style``, ``ground_truth``}, ``extra_info`` and ``agent_name``
  (verl's tool-agent loop reads ``extra_info.tools_kwargs``).
- ``trl``: conversational SFT rows ``messages`` + ``tools``. Messages and tool schemas are arbitrary
  JSON, so they use the ``datasets`` ``Json`` feature (arrow.json extension, ``List(Json())``):
  ``load_dataset("parquet")`` gives each message back with only its own keys and tool-call arguments
  as dicts, which chat templates expect.

Selection: verl browse takes the questions of an RL split (``--split``, ``--all-splits``), optionally only
those whose pass rate lies in a band (``--pass-band``, :func:`parse_pass_band`); trl the SFT-split
trajectories (``--all-trajectories``: every split). Reference rows (split ``reference``: swe-curate's gold
replays of the reference patch) are in no export unless ``--include-reference``.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.store import catalog, fsio
from pipelines.store.manifests import StoreError
from pipelines.store.records import record_type

BROWSE_TOOLS = ("search", "visit")
SWE_TOOLS = ("bash", "view", "str_replace", "create", "submit")
BROWSE_AGENT_PROMPT = "browse_agent"
# what grading an SWE patch needs of its instance (never the gold ``patch``: tools and rewards must not see it)
SWE_GRADE_FIELDS = ("instance_id", "repo", "base_commit", "environment_setup_commit", "version", "test_patch",
                    "FAIL_TO_PASS", "PASS_TO_PASS", "env_image", "recipe", "env_network", "id_style")

_PROMPT = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_REWARD = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])


def _verl_schema(create_kwargs: list[str], tools: tuple[str, ...], extra: list[tuple[str, pa.DataType]]) -> pa.Schema:
    ck = pa.struct([(k, pa.string()) for k in create_kwargs])
    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", _PROMPT),
        ("ability", pa.string()),
        ("reward_model", _REWARD),
        ("extra_info", pa.struct([
            ("index", pa.int64()),
            ("split", pa.string()),
            ("id", pa.string()),
            ("question", pa.string()),
            *extra,
            ("need_tools_kwargs", pa.bool_()),
            ("tools_kwargs", pa.struct([(t, pa.struct([("create_kwargs", ck)])) for t in tools])),
            ("meta", pa.string()),
        ])),
        ("agent_name", pa.string()),
    ])


# extra_info carries what the kit's reward needs (pipelines.integrations.verl.reward): the gold's aliases, its
# graph entity, answer type and evidence hops (browse; evidence as a JSON string, for the clue term), the
# instance to grade (swe, a JSON string)
VERL_SCHEMAS = {
    "browse": _verl_schema(["question_id", "question"], BROWSE_TOOLS,
                           [("answer_aliases", pa.list_(pa.string())), ("answer_entity", pa.string()),
                            ("answer_type", pa.string()), ("evidence", pa.string())]),
    "swe": _verl_schema(["instance_id", "instance"], SWE_TOOLS, [("instance", pa.string())]),
}


RL_SPLITS = ("rl", "sft+rl")
# the swe-curate split of the gold policy's rows (pipelines.swe.filters.REFERENCE_SPLIT): never in an export
# unless asked for (``include_reference``)
REFERENCE_SPLIT = "reference"
# the swe-curate split of clean, unresolved rows that came close (pipelines.swe.filters.SEMI_SPLIT): in a TRL
# SFT export only when asked for (``include_semi``), and marked (column ``semi_resolved``) for turn-masking
SEMI_SPLIT = "semi"


@dataclass(frozen=True)
class PassBand:
    """A band of question pass rates (``--pass-band``): ``lo``/``hi`` with each end open or closed. A question
    without a pass rate (no trajectory was verified) is outside every band."""

    lo: float
    hi: float
    lo_closed: bool = False
    hi_closed: bool = False

    def contains(self, rate: float | None) -> bool:
        if rate is None:
            return False
        above = rate >= self.lo if self.lo_closed else rate > self.lo
        below = rate <= self.hi if self.hi_closed else rate < self.hi
        return above and below

    def __str__(self) -> str:
        return f"{'[' if self.lo_closed else '('}{self.lo:g}, {self.hi:g}{']' if self.hi_closed else ')'}"


def parse_pass_band(text: str) -> PassBand:
    """``LO,HI`` is the open band LO < pass rate < HI (``0,1``: DAPO, all-wrong and all-correct questions out);
    a bracket closes an end: ``[0,0.5]`` is 0 <= rate <= 0.5, ``[0,1)`` drops only the all-correct ones."""
    t = text.strip()
    lo_closed, hi_closed = t[:1] == "[", t[-1:] == "]"
    body = t[1 if t[:1] in "[(" else 0: len(t) - (1 if t[-1:] in "])" else 0)]
    parts = body.split(",")
    try:
        lo, hi = (float(x) for x in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or hi is None or not 0 <= lo <= hi <= 1:
        raise ValueError(f"--pass-band {text!r}: give two pass rates LO,HI with 0 <= LO <= HI <= 1, e.g. 0,1 "
                         "(open: drops all-wrong and all-correct questions) or [0,0.5] (brackets close an end)")
    return PassBand(lo, hi, lo_closed, hi_closed)


class EmptyExport(StoreError):
    pass


def _rows(con, sql: str, table: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    rt = record_type(table)
    return [rt.decode(dict(zip(cols, r))) for r in cur.fetchall()]


def answer_entity(q: dict) -> str | None:
    """The graph entity a question's answer is (``formalization.binding[target]``), None for a value answer."""
    if q.get("answer_type") not in (None, "entity"):
        return None
    f = q.get("formalization") or {}
    binding, target = f.get("binding") or {}, f.get("target")
    return binding.get(target) if isinstance(binding, dict) and target else None


def browse_prompt(question: str) -> list[dict]:
    """The rollouts' own prompt (``configs/prompts/browse_agent.yaml``): system + user, as the SFT rows have it."""
    from pipelines.llm.prompts import load_prompt

    return [{"role": m["role"], "content": m["content"]} for m in load_prompt(BROWSE_AGENT_PROMPT).render(question=question)]


def verl_rows(out_dir: str, source: str = "browse", split: str | None = None, all_splits: bool = False,
              pass_band: PassBand | None = None, instance_filter=None) -> list[dict]:
    """verl rows. Browse: questions of an RL split (``rl``, ``sft+rl``) unless ``split`` names one or
    ``all_splits`` (questions the pipeline rejected for RL, split ``none``, are left out by default); with
    ``pass_band`` only those whose pass rate lies in it. Swe: the instances ``instance_filter``
    (:class:`pipelines.swe.quality_select.InstanceFilter`) keeps, every one without it."""
    if source == "swe" and split:
        raise ValueError("--split: swe instances have no split (every stored instance is validated); drop --split")
    if source == "swe" and pass_band is not None:
        raise ValueError("--pass-band: swe instances carry no pass rate (only browse questions do); drop --pass-band")
    con = catalog.connect(out_dir)
    rows: list[dict] = []
    try:
        if source == "browse":
            if split:
                where, params = "WHERE split = ?", [split]
            elif all_splits:
                where, params = "", []
            else:
                where, params = "WHERE split IN (?, ?)", list(RL_SPLITS)
            for q in _rows(con, f"SELECT * FROM questions {where} ORDER BY question_id", "questions", params):
                if pass_band is not None and not pass_band.contains(q.get("pass_rate")):
                    continue
                ctx = {"question_id": q["question_id"], "question": q["question"]}
                rows.append({
                    "data_source": "crucible/browse",
                    "prompt": browse_prompt(q["question"]),
                    "ability": "research",
                    "reward_model": {"style": "rule", "ground_truth": q["answer"]},
                    "extra_info": {
                        "split": q.get("split") or "train", "id": q["question_id"], "question": q["question"],
                        "answer_aliases": q.get("answer_aliases") or [], "answer_entity": answer_entity(q),
                        "answer_type": q.get("answer_type"), "evidence": json.dumps(q.get("evidence") or []),
                        "need_tools_kwargs": True,
                        "tools_kwargs": {t: {"create_kwargs": ctx} for t in BROWSE_TOOLS},
                        "meta": json.dumps({"hops": q["hops"], "source": q["source"], "difficulty": q.get("difficulty"),
                                            "pass_rate": q.get("pass_rate"),
                                            "difficulty_score": q.get("difficulty_score"),
                                            "solver_model": q.get("solver_model"), "solver_k": q.get("solver_k")}),
                    },
                    "agent_name": "tool_agent",
                })
        if source == "swe":
            from pipelines.swe.rollout import task_messages

            for it in _rows(con, "SELECT * FROM swe_instances ORDER BY instance_id", "swe_instances"):
                if instance_filter is not None and not instance_filter.keeps(it):
                    continue
                gt = json.dumps({"FAIL_TO_PASS": it["FAIL_TO_PASS"], "PASS_TO_PASS": it["PASS_TO_PASS"]})
                inst = json.dumps({k: it.get(k) for k in SWE_GRADE_FIELDS})
                rows.append({
                    "data_source": "crucible/swe",
                    "prompt": task_messages(it),
                    "ability": "swe",
                    "reward_model": {"style": "rule", "ground_truth": gt},
                    "extra_info": {
                        "split": "train", "id": it["instance_id"], "question": it["problem_statement"],
                        "instance": inst, "need_tools_kwargs": True,
                        "tools_kwargs": {t: {"create_kwargs": {"instance_id": it["instance_id"], "instance": inst}}
                                         for t in SWE_TOOLS},
                        "meta": json.dumps({"source": it["source"], "source_ref": it.get("source_ref")}),
                    },
                    "agent_name": "tool_agent",
                })
    finally:
        con.close()
    for i, r in enumerate(rows):
        r["extra_info"]["index"] = i
    return rows


def _trl_message(m: dict) -> dict:
    """One message as chat templates read it: only the keys it has (no ``None`` values: a template that tests
    ``'tool_calls' in message`` must not find an empty one), ``content`` always a string, tool-call arguments
    as dicts, ``reasoning_content`` kept where the model gave it."""
    out = {"role": m["role"], "content": m.get("content") or ""}
    if m.get("reasoning_content"):
        out["reasoning_content"] = m["reasoning_content"]
    if m.get("tool_calls"):
        calls = []
        for c in m["tool_calls"]:
            try:
                args = json.loads(c["function"]["arguments"])
            except (json.JSONDecodeError, TypeError):
                args = {"_raw": c["function"]["arguments"]}
            calls.append({"id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": args}})
        out["tool_calls"] = calls
    for k in ("tool_call_id", "name"):
        if m.get(k):
            out[k] = m[k]
    return out


def _trl_where(table: str, only_sft: bool, include_reference: bool, include_semi: bool = False) -> str:
    """Which trajectories a TRL export takes: the SFT splits (and the semi_resolved split ``semi`` when
    ``include_semi``), or every split; never a reference row (split ``reference``, or an swe row of a
    reference policy from a store written before that split) unless ``include_reference``."""
    from pipelines.swe.filters import REFERENCE_POLICIES

    splits = ["sft", "sft+rl", *([REFERENCE_SPLIT] if include_reference else []), *([SEMI_SPLIT] if include_semi else [])]
    conds = ["split IN (" + ", ".join(f"'{x}'" for x in splits) + ")"] if only_sft else []
    if not include_reference:
        conds.append(f"coalesce(split, '') <> '{REFERENCE_SPLIT}'")
        if table == "swe_trajectories":
            conds.append("policy NOT IN (" + ", ".join(f"'{p}'" for p in REFERENCE_POLICIES) + ")")
    return ("WHERE " + " AND ".join(conds)) if conds else ""


def trl_rows(out_dir: str, source: str = "all", only_sft: bool = True, include_reference: bool = False,
             include_semi: bool = False, instance_filter=None) -> list[dict]:
    """TRL conversational rows (:func:`_trl_where` says which); ``semi_resolved`` marks a row of split ``semi``
    (unresolved: train on it turn-masked, or not at all); ``instance_filter``: only swe trajectories of the
    instances it keeps."""
    con = catalog.connect(out_dir)
    out: list[dict] = []
    try:
        for table, src in (("browse_trajectories", "browse"), ("swe_trajectories", "swe")):
            if source not in (src, "all"):
                continue
            where = _trl_where(table, only_sft, include_reference, include_semi)
            kept = _kept_instances(con, instance_filter) if src == "swe" else None
            for t in _rows(con, f"SELECT * FROM {table} {where} ORDER BY traj_id", table):
                if kept is not None and t["instance_id"] not in kept:
                    continue
                msgs = [_trl_message(m) for m in t["messages"]]
                # tool results carry the tool name too (TRL's tool message shape)
                names = {c["id"]: c["function"]["name"] for m in msgs for c in m.get("tool_calls", [])}
                for m in msgs:
                    if m["role"] == "tool" and "name" not in m and names.get(m.get("tool_call_id")):
                        m["name"] = names[m["tool_call_id"]]
                out.append({"messages": msgs, "tools": t["tools"] or [], "source": src, "id": t["traj_id"],
                            "semi_resolved": t.get("split") == SEMI_SPLIT})
    finally:
        con.close()
    return out


def _kept_instances(con, instance_filter) -> set[str] | None:
    """Ids of the swe instances ``instance_filter`` keeps (None: no filter, every trajectory goes)."""
    if instance_filter is None:
        return None
    return {it["instance_id"] for it in _rows(con, "SELECT instance_id, quality_labels, difficulty FROM swe_instances",
                                              "swe_instances") if instance_filter.keeps(it)}


def trl_features():
    """Messages and tools as ``List(Json())``: each message keeps exactly its own keys through parquet."""
    from datasets import Features, Json, List, Value

    return Features({"messages": List(Json()), "tools": List(Json()), "source": Value("string"), "id": Value("string"),
                     "semi_resolved": Value("bool")})


EXPORT_DIR = "export"  # <out>/export/: the one folder inside a store an export may write to (the default --dest)


class ExportDestError(StoreError):
    pass


def check_dest(out_dir: str, dest: str, force: bool = False) -> Path:
    """The file an export may write: never a path inside the store ``out_dir`` (its shards, manifests and
    catalog are the writers') except under ``<out_dir>/export/``, never a folder, never an existing file
    unless ``force``. The folders above ``dest`` are resolved (a symlinked folder into the store is inside
    it); ``dest`` itself is not: a link there is replaced, never written through."""
    p = Path(dest)
    real = Path(os.path.realpath(p.parent)) / p.name
    store = Path(os.path.realpath(out_dir))
    if real == store or store in real.parents:
        if (store / EXPORT_DIR) not in real.parents:
            raise ExportDestError(f"--dest {dest}: inside the store {out_dir}, whose files only its writers write; "
                                  f"give a path outside it, or under {Path(out_dir) / EXPORT_DIR}/ (the default)")
    if p.is_dir():
        raise ExportDestError(f"--dest {dest}: is a directory; give a file path, e.g. {p / 'export.parquet'}")
    for up in p.parents:
        if up.exists() and not up.is_dir():
            raise ExportDestError(f"--dest {dest}: {up} is a file, not a folder; give a path in a folder")
    if (p.exists() or p.is_symlink()) and not force:
        raise ExportDestError(f"--dest {dest}: the file exists; give --force to replace it, or another --dest")
    return p


def export(out_dir: str, fmt: str, dest: str, source: str = "browse", split: str | None = None,
           only_sft: bool = True, all_splits: bool = False, pass_band: str | PassBand | None = None,
           include_reference: bool = False, force: bool = False, include_semi: bool = False,
           instance_filter=None) -> int:
    """Write the export to ``dest`` (a .parquet file), atomically. Returns the row count; 0 rows is an
    :class:`EmptyExport` error and writes nothing (a 0-row file only fails later, in the trainer); ``dest`` must
    pass :func:`check_dest` (``force``: replace an existing file), before and after the rows are read.
    ``pass_band`` (verl browse): only questions whose pass rate lies in it (:func:`parse_pass_band`);
    ``include_reference`` (trl): also the reference rows (split ``reference``: swe-curate's gold replays);
    ``include_semi`` (trl): also the semi_resolved rows (split ``semi``), marked in column ``semi_resolved``;
    ``instance_filter`` (swe): only instances, and trajectories of instances, it keeps (quality labels,
    difficulty: :mod:`pipelines.swe.quality_select`)."""
    band = parse_pass_band(pass_band) if isinstance(pass_band, str) else pass_band
    check_dest(out_dir, dest, force)
    if instance_filter is not None and source == "browse":
        raise ValueError("--exclude-labels/--max-difficulty/--difficulty-bands select swe instances by their quality "
                         "labels and difficulty; use them with --source swe (or trl --source all)")
    if fmt == "verl":
        if source not in VERL_SCHEMAS:
            raise ValueError(f"--source {source!r}: verl exports one source per file: browse or swe")
        if include_reference:
            raise ValueError("--include-reference: reference rows are swe trajectories, which only --format trl "
                             "exports (verl exports questions and instances); drop --include-reference")
        if include_semi:
            raise ValueError("--include-semi: semi_resolved rows are swe trajectories, which only --format trl "
                             "exports (verl exports questions and instances); drop --include-semi")
        rows = verl_rows(out_dir, source, split, all_splits, band, instance_filter)
    elif fmt == "trl":
        if band is not None:
            raise ValueError("--pass-band: a band of question pass rates selects verl browse rows; "
                             "use it with --format verl --source browse")
        rows = trl_rows(out_dir, source, only_sft, include_reference, include_semi, instance_filter)
    else:
        raise ValueError(f"--format {fmt!r}: allowed formats are verl, trl")
    if not rows:
        if fmt == "verl" and source == "browse":
            inb = f" with a pass rate in {band}" if band is not None else ""
            what = (f"no questions with split {split!r}{inb}" if split else f"no questions{inb or ' at all'}"
                    if all_splits else f"no questions with an RL split ({', '.join(RL_SPLITS)}){inb}; --all-splits "
                    "exports the others too")
        elif fmt == "verl":
            what = "no swe_instances"
        else:
            what = ("no trajectories with an SFT split (sft, sft+rl); --all-trajectories exports the others too"
                    if only_sft else "no trajectories")
            what += "" if include_reference else f"; reference rows (split {REFERENCE_SPLIT}) only with --include-reference"
            what += "" if include_semi or not only_sft else f"; semi_resolved rows (split {SEMI_SPLIT}) only with --include-semi"
        what += f"; swe rows only of instances with {instance_filter}" if instance_filter is not None else ""
        raise EmptyExport(f"{out_dir}: nothing to export ({what}); no file written")
    buf = io.BytesIO()
    if fmt == "verl":
        pq.write_table(pa.Table.from_pylist(rows, schema=VERL_SCHEMAS[source]), buf)
    else:
        from datasets import Dataset

        Dataset.from_list(rows, features=trl_features()).to_parquet(buf)
    # again: a file made meanwhile is refused too; the one atomic writer leaves no temp file on any failure
    fsio.write_bytes_atomic(str(check_dest(out_dir, dest, force)), buf.getvalue())
    return len(rows)
