"""What a problem statement may say, from the validation's own runs (pure functions).

- :func:`parse_run`: what a reproduction snippet did in a container (exit code, exception, printed value).
- :func:`render`: the default statement (``issue`` style: the call, what happened, what was expected, the
  snippet; ``located`` adds the function and file of the fix).
- :func:`name_leaks`: file paths, line numbers, private names and names only the fix touches in a statement.
- :func:`check_llm`: an LLM-written statement against the facts (every symbol exists, the exception it names
  is the observed one, the behaviour it calls expected is the passing run's)."""

from __future__ import annotations

import ast
import builtins
import keyword
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from crucible.pipelines.swe.patches import is_test_path, split_diff
from crucible.pipelines.swe.statement_log import norm_literal

EXC = r"[A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit|Interrupt|Failure|Iteration|KeyError)"
TRACE_LAST = re.compile(rf"^({EXC}|[A-Z]\w*Error|[A-Z]\w+)(?:: (.*))?$")
PATH = re.compile(r"(?<![\w.])(?:[\w.-]+/)+[\w.-]+\.(?:py|pyx|cfg|toml|txt)\b|\b[\w-]+\.py\b")
LINE = re.compile(r"\bline \d+\b", re.I)
# a traceback frame in the snippet itself (run as ``python -``: its file is <stdin>)
SNIPPET_FRAME = re.compile(r'^\s*File "<stdin>", line (\d+)')
MAX_CHECK_CHARS = 100  # a failed assertion longer than this is not quoted in a statement's headline
EXC_NAME = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception|Warning)|StopIteration|KeyboardInterrupt)\b")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
CALLED = re.compile(r"(?<![\w.])([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\(")
# what a statement calls expected: the words after the cue, up to the end of the clause
EXPECT_CLAIM = re.compile(r"\b(?:expect(?:ed|s|ing)?|should(?: have)?|supposed to|intended to|meant to|documented to|"
                          r"instead of|designed to|ought to|the documentation says)\b((?:[^.;\n`]|`[^`\n]*`|\.\d)*?)"
                          r"(?=[.;\n]\s|[.;\n]?$|,? but\b|,? while\b|,? whereas\b|,? yet\b)", re.I)
NO_ERROR = re.compile(r"\b(?:no (?:error|exception)|without (?:an? )?(?:error|exception|raising|failing)|"
                      r"not (?:raise|fail|error)|succeed|work(?:s|ed)? (?:fine|normally|correctly))\b", re.I)
NOISE = {"None", "True", "False", "self", "print", "repr", "list", "dict", "set", "tuple", "len", "str", "int",
         "float", "bool", "range", "sorted", "isinstance", "type", "object"}


def parse_run(exit_code: int | None, output: str, *, timed_out: bool = False) -> dict:
    """{exit_code, exc_type, message, value, timed_out, line}: the exception of the traceback's last line, or the
    last printed line of a clean exit; ``line``: the innermost traceback line in the snippet itself (None
    without one)."""
    lines = [ln for ln in (output or "").splitlines() if ln.strip()]
    exc = msg = value = line = None
    if exit_code not in (0, None) and any(ln.startswith("Traceback") for ln in lines):
        last = lines[-1]
        m = TRACE_LAST.match(last)
        if m:
            exc, msg = m.group(1).rsplit(".", 1)[-1], (m.group(2) or "")[:500]
        frames = [int(f.group(1)) for ln in lines if (f := SNIPPET_FRAME.match(ln))]
        line = frames[-1] if frames else None
    elif exit_code == 0 and lines:
        value = lines[-1][:2000]
    return {"exit_code": exit_code, "exc_type": exc, "message": msg, "value": value, "timed_out": timed_out,
            "line": line}


def failed_check(snippet: str, run: Mapping) -> str | None:
    """The ``assert`` statement of ``snippet`` that failed in ``run`` (the traceback's innermost line in the
    snippet, :func:`parse_run`'s ``line``), as one line a reader finds in the snippet; None when the run did
    not fail an assertion there, or the line is no whole ``assert`` statement short enough to quote."""
    n = run.get("line")
    if run.get("exc_type") != "AssertionError" or not n:
        return None
    lines = snippet.splitlines()
    if not 1 <= n <= len(lines):
        return None
    text = lines[n - 1].strip()
    try:
        whole = isinstance(ast.parse(text).body[0], ast.Assert)
    except (SyntaxError, IndexError):
        whole = False
    return text if whole and len(text) <= MAX_CHECK_CHARS else None


def reproduced(kind: str, before: Mapping, after: Mapping, claim: Mapping) -> tuple[bool, str]:
    """Did the snippet fail in "before" the way the statement says, and not in "after"?"""
    if before.get("timed_out") or after.get("timed_out"):
        return False, "timed out"
    if kind == "raise":
        if before["exc_type"] != claim["exc_type"]:
            return False, f"before: {before['exc_type'] or 'no exception'} (exit {before['exit_code']}), " \
                          f"the statement says {claim['exc_type']}"
        if after["exit_code"] != 0:
            return False, f"after: still fails ({after['exc_type'] or 'exit ' + str(after['exit_code'])})"
        return True, f"before raises {before['exc_type']}; after runs clean"
    if kind == "no_raise":
        if before["exit_code"] != 0:
            return False, f"before: raised {before['exc_type']}, the statement says nothing is raised"
        if after["exc_type"] != claim["expected_raises"]:
            return False, f"after: {after['exc_type'] or 'no exception'}, expected {claim['expected_raises']}"
        return True, f"before raises nothing; after raises {after['exc_type']}"
    if before["exit_code"] != 0 or after["exit_code"] != 0:
        return False, f"value: exit {before['exit_code']} before, {after['exit_code']} after " \
                      f"({before['exc_type'] or after['exc_type'] or 'no exception'})"
    if claim.get("got") is not None and before["value"] != claim["got"]:
        return False, f"before prints {before['value']}, the statement says {claim['got']}"
    if before["value"] == after["value"]:
        return False, f"before and after both print {before['value']}"
    return True, f"before prints {before['value']}; after prints {after['value']}"


def first_call(code: str) -> str | None:
    """The name a user calls in the failing line (``take_nth`` of ``list(take_nth(2, xs))``)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    for c in calls:
        name = ast.unparse(c.func)
        if name.split(".")[-1] not in NOISE and not name.startswith("_"):
            return name
    subs = [n for n in ast.walk(tree) if isinstance(n, ast.Subscript)]
    return ast.unparse(subs[0].value) if subs else None


def _last_line(snippet: str) -> str | None:
    """The snippet's failing line as a user would quote it: the expression, not the assignment around it
    (``cached = f(2)`` quotes ``f(2)``), and for a printed variable the call that made it (``actual`` quotes
    ``list(mi.substrings_indexes(sequence))``). None: a block of several lines, or too long."""
    line = snippet.rstrip().splitlines()[-1]
    if line[:1].isspace() or len(line) > 80:
        return None
    if line.startswith("print(repr(") and line.endswith("))"):
        line = line[len("print(repr("):-2]
    try:
        node = ast.parse(line).body[0]
    except (SyntaxError, IndexError):
        return line
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        line = ast.get_source_segment(line, node.value) or line
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Name):
        made = _assigned(snippet, node.value.id)
        if made and len(made) <= 80:
            line = made
    return line


def _assigned(snippet: str, name: str) -> str | None:
    """The source of the last top-level ``name = <expr>`` in ``snippet`` (None when there is none)."""
    try:
        tree = ast.parse(snippet)
    except SyntaxError:
        return None
    found = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            found = ast.get_source_segment(snippet, node.value)
    return found


def redact(text: str) -> str:
    """An error message with private names (``_x``, name-mangled ``_Cls__attr``; not dunders) left out:
    what the interpreter says about the fix's internals is no part of a user's report."""
    return re.sub(r"(?<!\w)_(?!_[A-Za-z0-9]+__\b)[A-Za-z0-9_]*\w", "<private>", text)


def render(facts: Mapping, *, style: str = "issue", location: Mapping | None = None) -> str:
    """The default statement from the facts (what the user ran, what happened, what was expected)."""
    call, line = facts.get("call"), _last_line(facts["snippet"])
    subject = f"`{line}`" if line else f"`{call}`" if call else "this code"
    kind, b, a = facts["kind"], facts["before"], facts["after"]
    if kind == "value":
        head = f"{subject} returns `{b['value']}`, expected `{a['value']}` (the snippet below prints it)."
    elif kind == "no_raise":
        head = (f"{subject} accepts input it should reject: the snippet below runs without error, expected it to "
                f"raise `{facts['expected_raises']}`.")
    else:
        err = f"{b['exc_type']}: {b['message']}" if b.get("message") else b["exc_type"]
        if redact(err) != err:  # a message about the fix's internals: the exception type says what a user sees
            err = b["exc_type"]
        check = facts.get("check")
        if b["exc_type"] == "AssertionError" and check and check != line:  # which check, when the snippet has several
            what = f"fails the check `{check}`"
        else:
            what = "fails its check" if b["exc_type"] == "AssertionError" else "raises"
        head = f"{subject} {what} where it should not: the snippet below ends with `{err[:300]}`; expected it to " \
               f"run without error."
    parts = [head, "", "```python", facts["snippet"].rstrip(), "```"]
    if style == "located" and location:
        parts += ["", f"The problem is in `{location.get('function')}` (`{location.get('path')}`)."]
    return "\n".join(parts)


def fix_names(inst: Mapping) -> set[str]:
    """Names the fix's diff touches: the mutated function (injected bugs) and ``def``/``class`` names on
    the diff's hunk headers and changed lines."""
    out = set()
    fn = (inst.get("meta") or {}).get("function")
    if fn:
        out.update(p for p in fn.split(".") if p)
    for _, text in split_diff(inst.get("patch") or ""):
        for ln in text.splitlines():
            if ln.startswith(("@@", "+", "-")) and not ln.startswith(("+++", "---")):
                out.update(re.findall(r"\b(?:def|class)\s+([A-Za-z_]\w*)", ln))
    return out


def name_leaks(text: str, inst: Mapping, public: Iterable[str] = ()) -> list[str]:
    """What a default (``issue``) statement must not say: a file path, a line number, a private name
    (leading underscore, not a dunder) or a name the fix touches that the user's own code does not call."""
    out = []
    m = PATH.search(text)
    if m:
        out.append(f"names a file path {m.group(0)!r}")
    m = LINE.search(text)
    if m:
        out.append(f"names a line ({m.group(0)})")
    words = set(re.findall(r"[A-Za-z_][\w]*", text))
    private = sorted(w for w in words - _bound_in_code(text)  # a snippet's own variable is no private API
                     if w.startswith("_") and not (w.startswith("__") and w.endswith("__")))
    if private:
        out.append(f"names a private name {private[0]!r}")
    hidden = sorted((fix_names(inst) & words) - set(public))
    if hidden:
        out.append(f"names {hidden[0]!r}, which only the fix touches")
    return out


def _bound_in_code(text: str) -> set[str]:
    """Names the code blocks of a statement bind themselves (variables, arguments, lambda parameters)."""
    out: set[str] = set()
    for block in re.findall(r"```(?:python)?\n(.*?)```", text, re.S):
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue
        out |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
        out |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return out


def repo_symbols(tree: Path, *, max_files: int = 2000) -> set[str]:
    """Every module, class, function, method and assigned name in the package's non-test sources."""
    out: set[str] = set()
    for n, p in enumerate(sorted(tree.rglob("*.py"))):
        rel = p.relative_to(tree).as_posix()
        if n > max_files or is_test_path(rel) or "/." in f"/{rel}":
            continue
        out.update(Path(rel).with_suffix("").parts)
        try:
            mod = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(mod):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.arg):
                out.add(node.arg)
    return out


def statement_symbols(text: str) -> set[str]:
    """Names a statement writes as code: inside backticks or code blocks (identifiers), or called (``x(``)."""
    spans = CODE_SPAN.findall(text) + re.findall(r"```(?:python)?\n(.*?)```", text, re.S)
    out = set()
    for s in spans:
        if re.match(rf"\s*{EXC}:", s):  # an error line: its type is checked apart, its message is prose
            continue
        out.update(re.findall(r"(?<![\w'\"])([A-Za-z_]\w*)", re.sub(r"(['\"]).*?\1", "", s)))
    out -= set(keyword.kwlist)
    plain = re.sub(r"```.*?```", "", text, flags=re.S)
    for c in CALLED.findall(plain):
        out.update(c.split("."))
    return out


def _literals(text: str) -> list[str]:
    """Python literals written in a piece of text (in backticks or bare lists/tuples/numbers/strings)."""
    cands = CODE_SPAN.findall(text) + re.findall(r"[\[({][^\])}]*[\])}]|'[^']*'|\"[^\"]*\"|-?\b\d+(?:\.\d+)?\b",
                                                 CODE_SPAN.sub("", text))
    out = []
    for c in cands:
        try:
            out.append(repr(ast.literal_eval(c.strip())))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return out


def check_llm(text: str, facts: Mapping, symbols: set[str]) -> list[str]:
    """Why an LLM-written statement contradicts the observed failure ([]: it agrees): a symbol that is not in
    the repository, an exception other than the observed one, or an expected behaviour other than the
    passing run's (or none that the runs can confirm)."""
    reasons = []
    known = set(symbols) | set(dir(builtins)) | set(facts.get("names") or ())
    invented = sorted(n for n in statement_symbols(text) if n not in known and n != "python")
    if invented:
        reasons.append(f"invented_symbol: {invented[0]!r} is not in the repository at this commit")
    kind, b, a = facts["kind"], facts["before"], facts["after"]
    allowed = {"raise": {b.get("exc_type")}, "no_raise": {facts.get("expected_raises")}, "value": set()}[kind]
    wrong = sorted({e for e in EXC_NAME.findall(text)} - allowed)
    if wrong:
        seen = b.get("exc_type") if kind == "raise" else "no exception (a wrong value)" if kind == "value" \
            else f"no exception, {facts.get('expected_raises')} expected"
        reasons.append(f"wrong_error: names {wrong[0]}, the observed failure is {seen}")
    claims = EXPECT_CLAIM.findall(text)
    got, want = norm_literal(b.get("value")), norm_literal(a.get("value"))
    grounded = False
    for claim in claims:
        lits = _literals(claim)
        if kind == "value":
            if got in lits and want not in lits:
                reasons.append(f"expected_mismatch: calls {b['value']} expected, which is what the failing run prints")
            elif want in lits:
                grounded = True
        elif kind == "raise" and NO_ERROR.search(claim):
            grounded = True
        elif kind == "no_raise" and facts.get("expected_raises") in claim:
            grounded = True
    if not grounded and not any(r.startswith("expected_mismatch") for r in reasons):
        said = (claims[0].strip()[:120] if claims else "nothing")
        shown = {"value": f"prints {a.get('value')}", "raise": "runs without error",
                 "no_raise": f"raises {facts.get('expected_raises')}"}[kind]
        reasons.append(f"expected_mismatch: says {said!r} is expected; the passing run {shown}")
    return reasons
