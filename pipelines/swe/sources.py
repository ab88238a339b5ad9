"""SWE-bench-format task files (JSONL or Parquet) -> validated instance dicts.

Every row is checked against the input fields SWE-bench defines. A bad row never disappears: it comes
back as an :class:`InputProblem` naming the file, the line (1-based; Parquet: row number), the field and
the fix, and the pipeline turns it into a ``failures`` row. ``FAIL_TO_PASS``/``PASS_TO_PASS`` may be JSON
strings (as SWE-bench ships them) or lists; both become lists here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from crucible.pipelines.rowcheck import row_problem
from crucible.pipelines.textio import (
    InputError,
    JSONSyntaxError,
    check_regular_file,
    loads,
    read_text,
    split_lines,
)

REQUIRED = ("repo", "instance_id", "base_commit", "patch", "test_patch")
OPTIONAL_STR = ("problem_statement", "hints_text", "created_at", "version", "environment_setup_commit")
LABELS = ("FAIL_TO_PASS", "PASS_TO_PASS")
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
COMMIT_RE = re.compile(r"^[0-9a-fA-F]{7,40}$")


class InputFileError(ValueError):
    """The whole file is unusable (missing, unknown format, not JSONL)."""


@dataclass(frozen=True)
class InputProblem:
    file: str
    line: int
    field: str | None
    reason: str
    instance_id: str | None = None
    payload: str | None = None

    def message(self) -> str:
        where = f"{self.file}:{self.line}" + (f" field {self.field!r}" if self.field else "")
        return f"{where}: {self.reason}"


def parse_label_list(value, field: str) -> tuple[list[str] | None, str | None]:
    """(list, None) or (None, reason). ``None``/absent -> ([], None) is decided by the caller."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            return None, (f"not a JSON list ({exc.msg}); write it as a list of test ids or a JSON string "
                          'like \'["tests/test_x.py::test_y"]\'')
    if hasattr(value, "tolist"):  # numpy / arrow arrays from Parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        return None, f"expected a list of test ids (or its JSON string), got {type(value).__name__}"
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        return None, f"every test id must be a non-empty string; bad entry {bad[0]!r}"
    return [str(v) for v in value], None


def check_row(row, file: str, line: int) -> tuple[dict | None, InputProblem | None]:
    """One raw row -> (instance, None) or (None, problem). The row is checked against
    ``schemas/swebench_row.json`` (required fields, types, unknown fields: the closest known name), then
    the diffs and the labels are parsed."""

    payload = json.dumps(row, default=str)[:20000] if isinstance(row, dict) else repr(row)[:2000]
    if isinstance(row, dict):
        row = {k: (v.isoformat() if k == "created_at" and hasattr(v, "isoformat") else v) for k, v in row.items()}
    iid = row.get("instance_id") if isinstance(row, dict) and isinstance(row.get("instance_id"), str) else None

    def bad(field, reason):
        return None, InputProblem(file, line, field, reason, iid, payload)

    prob = row_problem("swebench_row", row)
    if prob:
        return bad(*prob)
    for f in REQUIRED:
        if not row[f].strip():
            return bad(f, f"required field is blank; every row needs {', '.join(REQUIRED)}")
    for f in ("patch", "test_patch"):
        if "--- " not in row[f] or "+++ " not in row[f] or "@@" not in row[f]:
            return bad(f, "not a unified diff (needs ---/+++ headers and @@ hunks); give the output of git diff")
    out = {f: row[f] for f in REQUIRED}
    for f in OPTIONAL_STR:
        v = row.get(f)
        out[f] = str(v) if f == "version" and isinstance(v, (int, float)) else v
    for f in LABELS:
        v = row.get(f)
        if v is None:
            out[f] = None  # absent: computed by validation
            continue
        lst, reason = parse_label_list(v, f)
        if reason:
            return bad(f, reason)
        out[f] = lst
    out["problem_statement"] = out.get("problem_statement") or ""
    return out, None


def _raw_rows(path: Path, allow_empty: bool = True):
    """(line, row-or-problem-text) pairs. JSONL lines that are not JSON come back as strings."""

    suffix = "".join(path.suffixes[-2:]).lower()
    if path.suffix.lower() == ".parquet":
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
        yield from enumerate(table.to_pylist(), 1)
        return
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson") and suffix != ".jsonl.gz":
        raise InputFileError(f"{path}: unknown format; give a .jsonl (one JSON object per line) or .parquet file")
    try:
        text = read_text(path, "SWE-bench rows file")  # bad bytes name the line; .gz is decompressed
    except InputError as exc:
        raise InputFileError(str(exc)) from None
    if not text.strip() and not allow_empty:
        raise InputFileError(f"{path}: the file is empty; expected SWE-bench rows, one JSON object per line")
    for n, line in enumerate(split_lines(text), 1):  # on "\n" only: U+2028 in a problem statement is text
        if not line.strip():
            continue
        try:  # textio's limits: nesting, size, NaN, a repeated key
            row = loads(line, f"{path}:{n}")
        except JSONSyntaxError as err:
            exc = err.decode_error
            row = InputProblem(str(path), n, None, f"not valid JSON ({exc.msg} at column {exc.colno}); "
                               "each line must be one JSON object", payload=line[:2000])
        except InputError as err:
            row = InputProblem(str(path), n, None, str(err).removeprefix(f"{path}:{n}: "), payload=line[:2000])
        yield n, row


def read_instances(path: str | Path, allow_empty: bool = True) -> tuple[list[dict], list[InputProblem]]:
    """All good rows and all problems of a SWE-bench-format file. Duplicate instance ids: the first
    occurrence is kept, later ones are problems. ``allow_empty=False`` (a user's --instances file): an empty
    JSONL file is an :class:`InputFileError`."""
    p = Path(path)
    if p.is_dir():
        raise InputFileError(f"{p}: is a directory; --instances takes a JSONL or Parquet file of SWE-bench rows")
    if not p.exists():
        raise InputFileError(f"{p}: no such file; --instances takes a JSONL or Parquet file of SWE-bench rows")

    try:  # a FIFO, a device or a socket is refused by name before it is opened (Parquet too: it would hang)
        check_regular_file(p, "SWE-bench rows file")
    except InputError as exc:
        raise InputFileError(str(exc)) from None
    good, problems, seen = [], [], {}
    for line, row in _raw_rows(p, allow_empty):
        if isinstance(row, InputProblem):
            problems.append(row)
            continue
        inst, prob = check_row(row, str(p), line)
        if prob:
            problems.append(prob)
            continue
        if inst["instance_id"] in seen:
            problems.append(InputProblem(str(p), line, "instance_id",
                                         f"duplicate of line {seen[inst['instance_id']]}; instance ids must be unique",
                                         inst["instance_id"], json.dumps(inst)[:20000]))
            continue
        seen[inst["instance_id"]] = line
        good.append(inst)
    return good, problems
