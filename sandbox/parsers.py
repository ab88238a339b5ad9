"""Pure log parsers, registered by name so specs stay serializable (``PARSERS["pytest_rA"](text)``).

Every parser maps a text (console log or JUnit XML) to ``{test_id: STATUS}`` with STATUS one of
PASSED, FAILED, SKIPPED, ERROR, XFAIL, XPASS. ``pytest_rA`` reproduces SWE-bench's id convention
exactly (split the ``-rA`` short-summary line on whitespace, the last line for an id wins), quirks
included, because SWE-bench labels were made that way.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
SWEBENCH_STATUSES = ("FAILED", "PASSED", "SKIPPED", "ERROR", "XFAIL")  # swebench TestStatus, no XPASS
PARSERS: dict[str, Callable[[str], dict[str, str]]] = {}


# pytest >= 9 reports unittest subTest failures on their own lines and still prints ``PASSED <id>`` for the
# containing test (JUnit records it failed): a test with a failed subtest has failed
SUBFAILED_RE = re.compile(r"^SUBFAILED(?:\(.*?\))? (\S+)")


def subtest_failures(log: str) -> set[str]:
    """Ids of tests with a ``SUBFAILED`` summary line (pytest's native subtests)."""
    return {m.group(1) for m in map(SUBFAILED_RE.match, log.split("\n")) if m}


def register(name: str, console: bool = True):
    """Register a parser by name. A console parser's result marks a test with a failed subtest FAILED."""
    def deco(fn):
        if name in PARSERS:
            raise ValueError(f"parser {name!r} registered twice")
        if not console:
            PARSERS[name] = fn
            return fn

        @functools.wraps(fn)
        def parse(log: str) -> dict[str, str]:
            out = fn(log)
            for tid in subtest_failures(log) if "SUBFAILED" in log else ():
                if out.get(tid) in ("PASSED", "XPASS"):
                    out[tid] = "FAILED"
            return out
        PARSERS[name] = parse
        return parse
    return deco


def get_parser(name: str) -> Callable[[str], dict[str, str]]:
    try:
        return PARSERS[name]
    except KeyError:
        raise KeyError(f"no log parser named {name!r}; known: {', '.join(sorted(PARSERS))}") from None


# pytest < 4.1 words a failed test's short-summary line "FAIL <id>"; later ones (and every pytest that
# SWE-bench's pytest_rA-family repos were labelled with: their tables install pytest >= 4.4) say "FAILED <id>"
OLD_FAIL_RE = re.compile(r"^FAIL (?=\S)")
# pytest < 4 writes the instance of a test class into node ids ("t.py::TestA::()::test_x"): the same test as
# every later pytest's "t.py::TestA::test_x", the id labels of those (SWE-bench's among them) name
OLD_INSTANCE_RE = re.compile(r"::\(\)(?=::)")


def _swebench_status_lines(log: str):
    """(status, id) per line that starts with a status word, split as SWE-bench's ``parse_log_pytest`` does
    (FAILED lines drop `` - `` first; the id is the second whitespace-separated word). An old pytest's
    ``FAIL <id>`` is read as ``FAILED <id>``: SWE-bench's parser skips it, which loses nothing for an id of its
    own (absent counts as failing) but lets a passing sibling decide an id that whitespace-splitting shared
    (``t[a b]`` and ``t[a c]`` are both ``t[a``: the last line wins, and failures print last). A pytest < 4
    class-instance step (``::()``) is dropped from ids, as JUnit ids never have it."""
    for line in log.split("\n"):
        line = OLD_FAIL_RE.sub("FAILED ", line)
        if any(line.startswith(s) for s in SWEBENCH_STATUSES):
            if line.startswith("FAILED"):
                line = line.replace(" - ", " ")
            parts = line.split()
            if len(parts) > 1:
                yield parts[0], OLD_INSTANCE_RE.sub("", parts[1])


@register("pytest_rA")
def parse_pytest_rA(log: str) -> dict[str, str]:
    """SWE-bench ``parse_log_pytest``: lines starting with a status word; FAILED lines drop `` - ``."""
    return {test: status for status, test in _swebench_status_lines(log)}


_OPTION = re.compile(r"(.*?)\[(.*)\]")


@register("pytest_rA_options")
def parse_pytest_rA_options(log: str) -> dict[str, str]:
    """SWE-bench ``parse_log_pytest_options`` (requests, pydicom, pylint): ``pytest_rA`` ids, then a
    parametrization that is an absolute path keeps only its last component (``t[/a/b/c.py]`` -> ``t[/c.py]``)."""
    out: dict[str, str] = {}
    for status, name in _swebench_status_lines(log):
        m = _OPTION.search(name)
        if m:
            main, opt = m.groups()
            if opt.startswith("/") and not opt.startswith("//") and "*" not in opt:
                opt = "/" + opt.split("/")[-1]
            name = f"{main}[{opt}]"
        out[name] = status
    return out


_CONTROL = str.maketrans("", "", "".join(chr(c) for c in range(1, 32)))


@register("pytest_rA_v2")
def parse_pytest_rA_v2(log: str) -> dict[str, str]:
    """SWE-bench ``parse_log_pytest_v2`` (astropy, scikit-learn, sphinx): colour codes and control characters
    removed; ``STATUS id`` lines, and (older pytest, ``-v``) lines ending in a status: ``id STATUS``."""
    out: dict[str, str] = {}
    for line in log.split("\n"):
        line = re.sub(r"\[(\d+)m", "", line).translate(_CONTROL)
        if any(line.startswith(s) for s in SWEBENCH_STATUSES):
            if line.startswith("FAILED"):
                line = line.replace(" - ", " ")
            parts = line.split()
            if len(parts) >= 2:
                out[parts[1]] = parts[0]
        elif any(line.endswith(s) for s in SWEBENCH_STATUSES):
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
    return out


@register("pytest_rA_full")
def parse_pytest_rA_full(log: str) -> dict[str, str]:
    """Like ``pytest_rA`` but also XPASS, and ids keep everything up to the `` - message`` separator
    (parametrized ids containing spaces survive)."""
    out: dict[str, str] = {}
    pat = re.compile(r"^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) (\S.*?)(?: - .*)?$")
    for line in log.split("\n"):
        m = pat.match(line.rstrip())
        if not m:
            continue
        status, rest = m.group(1), m.group(2)
        if status == "SKIPPED" and rest.startswith("["):
            continue  # "SKIPPED [1] file.py:3: reason" is a reason line, not an id
        out[rest.strip()] = status
    return out


def junit_nodeid(file: str | None, classname: str, name: str) -> str:
    """pytest node id from a JUnit testcase. With ``junit_family=xunit1`` the ``file`` attribute is present
    and the class part is what remains of ``classname`` after the module path."""
    if not file:
        return f"{classname.replace('.', '/')}::{name}" if classname else name
    module = file[:-3] if file.endswith(".py") else file
    mod_dotted = module.replace("/", ".").replace("\\", ".")
    if classname and not classname.startswith(mod_dotted):
        # a test method inherited from a base class elsewhere (``file`` = where it is defined, e.g.
        # tests/__init__.py): the node lives in the module classname names, up to its first CapWords part
        parts = classname.split(".")
        k = next((i for i, p in enumerate(parts) if p[:1].isupper()), None)
        if k:
            return "::".join(["/".join(parts[:k]) + ".py", *parts[k:], name])
    rest = classname[len(mod_dotted):].lstrip(".") if classname.startswith(mod_dotted) else ""
    return "::".join([file] + ([*rest.split(".")] if rest else []) + [name])


def junit_cases(text: str) -> list[tuple[str, str]]:
    """(node id, status) of every testcase element of a pytest JUnit XML report, in order, ids repeated where
    the report repeats them (pytest < 8 gives colliding parametrize ids, e.g. ``v0`` made unique from ``v`` twice
    and a real ``v0``, one node id; JUnit keeps each as its own element). Raises ValueError on malformed XML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"malformed JUnit XML: {exc}") from None
    out: list[tuple[str, str]] = []
    for case in root.iter("testcase"):
        children = {child.tag: child for child in case}
        if "error" in children and children["error"].get("message") == "collection failure":
            # a module that failed to import: pytest's -rA line names just the file
            nodeid = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        else:
            nodeid = junit_nodeid(case.get("file"), case.get("classname", ""), case.get("name", ""))
        if "failure" in children:
            status = "FAILED"
        elif "error" in children:
            status = "ERROR"
        elif "skipped" in children:
            status = "XFAIL" if children["skipped"].get("type") == "pytest.xfail" else "SKIPPED"
        else:
            status = "PASSED"
        out.append((nodeid, status))
    return out


# pytest's JUnit message for an error raised after the test's call passed (a fixture's teardown):
# "failed on teardown with ..." (pytest >= 5), "test teardown failure" (pytest < 5)
TEARDOWN_MESSAGES = ("failed on teardown", "test teardown failure")


def junit_teardown_errors(text: str) -> set[str]:
    """Node ids whose JUnit ``<error>`` is a teardown error: the call passed and the console prints both PASSED
    and ERROR for the id, while JUnit keeps one case with the error (the id's outcome is the error)."""
    out = set()
    for case in ET.fromstring(text).iter("testcase"):
        err = case.find("error")
        if err is not None and (err.get("message") or "").startswith(TEARDOWN_MESSAGES):
            out.add(junit_nodeid(case.get("file"), case.get("classname", ""), case.get("name", "")))
    return out


@register("junit_xml", console=False)
def parse_junit_xml(text: str) -> dict[str, str]:
    """Outcomes from a pytest JUnit XML report, one per node id. Raises ValueError on malformed XML."""
    out: dict[str, str] = {}
    for nodeid, status in junit_cases(text):
        # a test failing in teardown after passing appears twice (call ok, then error): worst wins
        prev = out.get(nodeid)
        if prev is None or _rank(status) > _rank(prev):
            out[nodeid] = status
    return out


def junit_totals(text: str) -> dict[str, int]:
    """``tests/failures/errors/skipped`` summed over testsuite elements."""
    root = ET.fromstring(text)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        for k in tot:
            tot[k] += int(s.get(k, 0) or 0)
    return tot


def _rank(status: str) -> int:
    return {"PASSED": 0, "XPASS": 0, "SKIPPED": 1, "XFAIL": 1, "FAILED": 2, "ERROR": 3}.get(status, 0)


SUMMARY_RE = re.compile(r"^=+ (.*?) in [\d.]+s(?: \([^)]*\))? =+$")
COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|deselected|rerun)")


def parse_summary_counts(log: str) -> dict[str, int] | None:
    """Counts from the last ``=== 2 failed, 5 passed in 0.1s ===`` line, or None if there is none."""
    found = None
    for line in log.splitlines():
        m = SUMMARY_RE.match(line.strip())
        if m and ("passed" in m.group(1) or "failed" in m.group(1) or "error" in m.group(1)
                  or "skipped" in m.group(1) or "no tests ran" in m.group(1) or "deselected" in m.group(1)):
            found = m.group(1)
    if found is None:
        return None
    counts: dict[str, int] = {}
    for n, word in COUNT_RE.findall(found):
        word = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[word] = counts.get(word, 0) + int(n)
    return counts


def count_statuses(statuses: dict[str, str]) -> dict[str, int]:
    out = {s: 0 for s in STATUSES}
    for s in statuses.values():
        out[s] = out.get(s, 0) + 1
    return out
