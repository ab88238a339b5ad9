"""The error-driven repair ladder: read a build or test log, name the one change that should fix what it
shows, and apply it to the recipe. Pure functions (log text in, :class:`Rung` out; recipe in, recipe out);
the loop that builds, runs and climbs is ``crucible.sandbox.repair``.

Each rung keeps the log line that triggered it, so a recipe records why it differs from the inferred one,
and a source the ladder could not fix names the last rung and the line that decided it. The tables mapping
import names, headers and pytest options to what provides them are data: ``sandbox/data/*.json``.
"""

from __future__ import annotations

import copy
import enum
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources

from crucible.sandbox.ladder_extras import extra_providing
from crucible.sandbox.repofacts import EXTRA_PREFERENCE, floor_as_of
from crucible.sandbox.startup import code_line, syntax_needs


class RungKind(str, enum.Enum):
    APT_PACKAGE = "apt_package"  # a missing C header, library or build program -> its Debian package
    PYTEST_PLUGIN = "pytest_plugin"  # an unknown fixture, option, marker or ini key -> the plugin
    INSTALL_MODULE = "install_module"  # ModuleNotFoundError -> the distribution providing the module
    INSTALL_EXTRA = "install_extra"  # ... where a declared extra requires it -> that extra (crucible.sandbox.ladder_extras)
    NEXT_EXTRA = "next_extra"  # the package has no such extra -> the next declared one (or none)
    AS_OF_DATE = "as_of_date"  # today's releases do not resolve or broke an API -> releases as of the source date
    OLDER_PYTHON = "older_python"  # syntax the base's Python rejects, or requires-python excludes it
    NEWER_PYTHON = "newer_python"  # syntax of a later Python (type X = ..., match, :=) -> the first base that has it
    CLEAR_ADDOPTS = "clear_addopts"  # an option in addopts that no known plugin provides -> -o addopts=
    PYTHONPATH = "pythonpath"  # a module of the tree itself is not importable -> put its directory on the path
    CONTINUE_COLLECTION = "continue_collection"  # a few modules fail to import and nothing above fixes them ->
    # run the rest (--continue-on-collection-errors; the broken modules stay ERROR entries in JUnit)
    NEWEST_TEST_RUNNER = "newest_test_runner"  # pytest's own option unknown to the pinned pytest, an old pytest
    # that cannot run on this Python; or, validating given labels: labelled tests this env never collected
    # (ids of another pytest: a labelling harness installs today's pytest, the repo pins an old one) -> pytest
    # upgraded to its newest release as of the env's date (label_rung; kept only where more given labels hold)


class Phase(str, enum.Enum):
    BUILD = "build"
    TEST = "test"


@dataclass(frozen=True)
class Rung:
    kind: RungKind
    arg: str  # the distribution, Debian package, extra, date, Python version or directory
    trigger: str  # the log line that triggered it
    phase: Phase

    @property
    def key(self) -> tuple[str, str]:
        return self.kind.value, self.arg

    def as_dict(self) -> dict:
        d = asdict(self)
        d["kind"], d["phase"] = self.kind.value, self.phase.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> Rung:
        return cls(RungKind(d["kind"]), d["arg"], d["trigger"], Phase(d["phase"]))


@functools.cache
def table(name: str) -> dict:
    """A data table from ``sandbox/data/<name>.json`` (``_doc`` keys dropped)."""
    data = json.loads(resources.files("crucible.sandbox").joinpath("data", f"{name}.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k != "_doc"}


def deciding_line(lines: list[str]) -> str | None:
    """The line that names the error: the first trigger line that is not pytest's bookkeeping
    (``collected N items``, ``Interrupted: ...``) nor the source line a SyntaxError shows."""
    named = [ln for i, ln in enumerate(lines) if not (COLLECTED.search(ln) or COLLECTION_INTERRUPTED.search(ln)
                                                       or _is_code(lines, i))]
    return (named or lines or [None])[0]


def module_distribution(module: str) -> str:
    """The distribution to install for an import name: the table's entry for the longest dotted prefix
    listed, else the top-level name itself (underscores as dashes, as the index normalises them)."""
    dists = table("import_dists")
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in dists and isinstance(dists[name], str):
            return dists[name]
    return parts[0].replace("_", "-")


# the patterns, in the order the ladder prefers them (the most specific fix first)
MISSING_MODULE = re.compile(r"(?:ModuleNotFoundError: No module named|ImportError: No module named) '?([\w.]+)'?")
MISSING_HEADER = re.compile(r"fatal error: ([\w./+-]+\.h): No such file or directory")
MISSING_LIB = re.compile(r"cannot find -l([\w+.-]+)")
MISSING_PROGRAM = re.compile(r"(?:command '([\w+.-]+)' failed: No such file|([\w+.-]+): (?:command )?not found\b|"
                             r"No such file or directory: '([\w+.-]+)'|([\w+.-]+) executable not found)")
FIXTURE = re.compile(r"fixture '(\w+)' not found")
UNRECOGNIZED = re.compile(r"error: unrecognized arguments: (.+)")
MARKER = re.compile(r"'(\w+)' not found in `markers` configuration option")
INI_KEY = re.compile(r"Unknown config option: (\w+)")
ASYNC = re.compile(r"async def functions are not natively supported")
NO_EXTRA = re.compile(r"does not provide the extra '([\w.-]+)'")
SYNTAX = re.compile(r"(SyntaxError: (?:invalid syntax|Missing parentheses|invalid escape).*|"
                    r"requires a different Python: .*|"
                    r"cannot import name '(?:Mapping|MutableMapping|Sequence|Iterable|Callable)' from 'collections'.*|"
                    r"error: .*longintrepr\.h.*|error: .*(?:_PyLong_|PyThreadState|tp_print|_PyUnicode_).*)")
AS_OF = re.compile(r"(ResolutionImpossible.*|No matching distribution found for .*|"
                   r"ImportError: cannot import name '\w+' from '([\w.]+)'.*|"
                   r"AttributeError: module '([\w.]+)' has no attribute .*|"
                   r"pkg_resources\.VersionConflict.*|Failed building wheel for .*|Failed to build .*)")
# a run that never started (pytest's deciding line: crucible.sandbox.startup), and what it names
REQUIRED_PLUGINS = re.compile(r"Missing required plugins: (.+)")
PLUGIN_IMPORT = re.compile(r"Error importing plugin \"([\w.-]+)\": No module named '([\w.]+)'")
INVALID_CHOICE = re.compile(r"error: argument (-[\w-]+)(?:/-[\w-]+)*: invalid choice: .*")
OLD_RUNNER = re.compile(r"required field \"lineno\" missing from alias")  # pytest < 6.2.5 on Python >= 3.10
NO_RUNNER = re.compile(r": No module named '?pytest'?$")
SYNTAX_ANY = re.compile(r"SyntaxError: .+")
COLLECTION_INTERRUPTED = re.compile(r"Interrupted: (\d+) errors? during collection")
COLLECTED = re.compile(r"collected (\d+) items")
UNKNOWN_OPTION = re.compile(r"(?:error: unrecognized arguments: |ERROR: usage: .*|no such option: )(.*)")
TRIGGER_ANY = re.compile("|".join(p.pattern for p in (
    MISSING_MODULE, MISSING_HEADER, MISSING_LIB, MISSING_PROGRAM, FIXTURE, UNRECOGNIZED, MARKER, INI_KEY, ASYNC,
    NO_EXTRA, SYNTAX, AS_OF, COLLECTION_INTERRUPTED, COLLECTED, REQUIRED_PLUGINS, PLUGIN_IMPORT, INVALID_CHOICE,
    OLD_RUNNER, NO_RUNNER, SYNTAX_ANY)))


def trigger_lines(text: str, limit: int = 200) -> list[str]:
    """The lines of a log any rung could act on (deduplicated, in order, at most ``limit``); a SyntaxError line
    comes with the source line it shows just before it (which Python the syntax needs: ``startup.syntax_needs``)."""

    out: list[str] = []
    raw = text.splitlines()
    for i, line in enumerate(raw):
        line = line.strip()
        if line and len(line) < 2000 and line not in out and TRIGGER_ANY.search(line):
            window = [r.strip() for r in raw[max(0, i - 6):i + 1]]
            code = code_line(window, len(window) - 1) if SYNTAX_ANY.search(line) else None
            if code and code not in out and not TRIGGER_ANY.search(code):
                out.append(code)
            out.append(line)
            if len(out) >= limit:
                break
    return out


def _is_code(lines: list[str], i: int) -> bool:
    """``lines[i]`` is the source line a SyntaxError shows (:func:`trigger_lines` puts it just before it)."""
    return i + 1 < len(lines) and bool(SYNTAX_ANY.search(lines[i + 1])) and not TRIGGER_ANY.search(lines[i])


def debian_package(what: str, kind: str) -> str | None:
    """The Debian package for a missing header (``kind='headers'``), -l library or program."""
    t = table("debian_packages")[kind]
    if what in t:
        return t[what]
    if kind == "headers":
        base = what.rsplit("/", 1)[-1]
        return next((pkg for h, pkg in t.items() if h.rsplit("/", 1)[-1] == base), None)
    return None


def _plugin_for_options(text: str, owner: str | None = None) -> str | None:
    """The plugin providing an option of ``text`` (``owner="pytest"``: whether pytest itself does)."""
    opts = table("pytest_plugins")["options"]
    for tok in text.split():
        dist = opts.get(tok.split("=", 1)[0])
        if dist and (dist == owner if owner else dist != "pytest"):
            return dist
    return None


def _runner_too_old(line: str) -> bool:
    """pytest's own option unknown to this pytest, or an old pytest's failure on this Python: the pinned pytest
    is older than the config (or the Python) it runs with."""
    m = UNRECOGNIZED.search(line) or INVALID_CHOICE.search(line)
    return bool(OLD_RUNNER.search(line) or (m and _plugin_for_options(m.group(1), owner="pytest")))


def candidates(lines: list[str], phase: Phase, recipe: dict, local_modules: frozenset[str] = frozenset(),
               pythons: tuple[str, ...] = (), extras: Mapping[str, list[str]] | None = None) -> list[Rung]:
    """Every rung the log lines call for, best first. ``local_modules``: top-level module names the tree
    itself provides (never installed from the index: a test importing ``tests.helpers`` gets the path
    rung instead). ``pythons``: the Python versions a base image exists for. ``extras``: the package's
    declared extras and what each requires (``ladder_extras.extra_requirements``): a missing module one of
    them requires gets that extra's rung first."""
    out: list[Rung] = []

    def add(kind: RungKind, arg: str | None, line: str) -> None:
        if kind in (RungKind.INSTALL_MODULE, RungKind.PYTEST_PLUGIN) and arg and \
                arg.lower().replace("-", "_") in {m.lower() for m in local_modules}:
            return  # the tree's own package (pytest-cov's suite naming pytest-cov): never from the index
        installs = (RungKind.INSTALL_MODULE, RungKind.PYTEST_PLUGIN)
        if arg and all(r.key != (kind.value, arg) and not (kind in installs and r.kind in installs and r.arg == arg)
                       for r in out):  # one install of a distribution, whichever line named it
            out.append(Rung(kind, arg, line[:500], phase))

    for line in lines:
        if m := MISSING_HEADER.search(line):
            add(RungKind.APT_PACKAGE, debian_package(m.group(1), "headers"), line)
        if m := MISSING_LIB.search(line):
            add(RungKind.APT_PACKAGE, debian_package(m.group(1), "libraries"), line)
        if m := MISSING_PROGRAM.search(line):
            prog = next(g for g in m.groups() if g)
            add(RungKind.APT_PACKAGE, debian_package(prog, "programs"), line)
    _plugin_rungs(lines, add)
    for line in lines:
        if m := MISSING_MODULE.search(line):
            mod = m.group(1)
            top = mod.split(".")[0]
            if top in local_modules:
                add(RungKind.PYTHONPATH, top, line)
            elif not top.startswith("_") and top not in table("import_dists")["_never"]:
                add(RungKind.INSTALL_EXTRA, extra_providing(module_distribution(mod), extras or {},
                                                            (recipe.get("sources") or {}).get("extra")), line)
                add(RungKind.INSTALL_MODULE, module_distribution(mod), line)
        if NO_RUNNER.search(line):
            add(RungKind.INSTALL_MODULE, "pytest", line)
    extra = (recipe.get("sources") or {}).get("extra")
    for line in lines:
        if (m := NO_EXTRA.search(line)) and m.group(1) == extra:
            add(RungKind.NEXT_EXTRA, next_extra(recipe) or "none", line)
    src_date = (recipe.get("sources") or {}).get("source_date")
    if src_date and not recipe.get("as_of"):
        for line in lines:
            m = AS_OF.search(line)
            if m and (m.group(2) or m.group(3) or "").split(".")[0] not in local_modules:
                add(RungKind.AS_OF_DATE, as_of_for(src_date), line)
                break
    _python_rungs(lines, recipe, pythons, add)
    _option_rungs(lines, recipe, src_date, add)
    collected = max((int(m.group(1)) for ln in lines if (m := COLLECTED.search(ln))), default=0)
    for line in lines:
        m = COLLECTION_INTERRUPTED.search(line)
        if m and not out and "--continue-on-collection-errors" not in recipe["test_cmd"] \
                and 0 < int(m.group(1)) * 10 <= collected:  # at most 1 broken module per 10 collected tests
            add(RungKind.CONTINUE_COLLECTION, m.group(1), line)
    return out


def _plugin_rungs(lines: list[str], add) -> None:
    """The pytest plugins (or what they import) that fixtures, options, markers and ini keys name."""
    plugins = table("pytest_plugins")
    for line in lines:
        if m := FIXTURE.search(line):
            dist = plugins["fixtures"].get(m.group(1))
            add(RungKind.PYTEST_PLUGIN, dist if dist != "pytest" else None, line)
        if m := UNRECOGNIZED.search(line):
            add(RungKind.PYTEST_PLUGIN, _plugin_for_options(m.group(1)), line)
        if m := MARKER.search(line):
            add(RungKind.PYTEST_PLUGIN, plugins["markers"].get(m.group(1)), line)
        if m := INI_KEY.search(line):
            add(RungKind.PYTEST_PLUGIN, plugins["ini_keys"].get(m.group(1)), line)
        if ASYNC.search(line):
            add(RungKind.PYTEST_PLUGIN, "pytest-asyncio", line)
        if m := REQUIRED_PLUGINS.search(line):  # pytest's required_plugins ini key, requirement strings
            for req in m.group(1).split(","):
                add(RungKind.PYTEST_PLUGIN, req.strip() or None, line)
        if m := PLUGIN_IMPORT.search(line):  # -p NAME (in addopts): the plugin, or what it imports
            plugin, missing = m.groups()
            same = missing.split(".")[0] == plugin.split(".")[0]
            add(RungKind.PYTEST_PLUGIN if same else RungKind.INSTALL_MODULE, module_distribution(missing), line)


def _option_rungs(lines: list[str], recipe: dict, src_date: str | None, add) -> None:
    """Options no plugin provides: pytest's own ones the env's pytest does not know (or an old pytest on a new
    Python) -> the newest pytest as of the env's date, once; one no table knows -> releases as of the source's
    day; last, the repo's addopts cleared."""
    for line in lines:
        if _runner_too_old(line):
            if not any(r["kind"] == RungKind.NEWEST_TEST_RUNNER.value for r in recipe.get("rungs") or []):
                add(RungKind.NEWEST_TEST_RUNNER, "pytest", line)
            break
    for line in lines:
        m = UNRECOGNIZED.search(line)
        if m and src_date and not recipe.get("as_of") and not _plugin_for_options(m.group(1)) \
                and not _runner_too_old(line):
            add(RungKind.AS_OF_DATE, as_of_for(src_date), line)
            break
    for line in lines:
        if (m := UNRECOGNIZED.search(line)) and not _plugin_for_options(m.group(1)) \
                and "addopts=" not in recipe["test_cmd"]:
            add(RungKind.CLEAR_ADDOPTS, m.group(1).strip()[:100], line)


def _python_rungs(lines: list[str], recipe: dict, pythons: tuple[str, ...], add) -> None:
    """The Python the first syntax error asks for (``startup.syntax_needs`` on the source line it shows):
    the first available base that has a later syntax, else the next older base (Python 2 code, an old
    pytest on a new Python, a C extension of an older C-API)."""

    older = [p for p in sorted(pythons, key=_vt) if _vt(p) < _vt(recipe["python"])]
    newer = [p for p in sorted(pythons, key=_vt) if _vt(p) > _vt(recipe["python"])]
    for i, line in enumerate(lines):
        if not (SYNTAX.search(line) or SYNTAX_ANY.search(line) or OLD_RUNNER.search(line)):
            continue
        need = syntax_needs(lines[i - 1] if i and _is_code(lines, i - 1) else None, line) \
            if SYNTAX_ANY.search(line) else None
        if need and need[0] == "newer":
            fit = [p for p in newer if _vt(p) >= _vt(need[1])]
            if fit:
                add(RungKind.NEWER_PYTHON, fit[0], line)
        elif older and (need or SYNTAX.search(line) or OLD_RUNNER.search(line)):
            add(RungKind.OLDER_PYTHON, older[-1], line)
        break


def _vt(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def as_of_for(source_date: str) -> str:
    """The as-of cut-off for a source dated ``source_date`` (ISO): the end of that day, UTC."""
    return source_date[:10] + "T23:59:59Z"


def next_extra(recipe: dict) -> str | None:
    """The next test-ish extra the package declares after the current one, or None (install without one)."""

    src = recipe.get("sources") or {}
    declared, current = src.get("extras_declared") or [], src.get("extra")
    order = [e for e in EXTRA_PREFERENCE if e in declared]
    if current in order:
        order = order[order.index(current) + 1:]
    return next((e for e in order if e != current), None)


def _insert_step(recipe: dict, step: dict) -> None:
    """Before the package step (build-time imports need it there too), else before the test runner."""
    steps = recipe["install"]
    idx = next((i for i, s in enumerate(steps) if s["name"].startswith("package")), len(steps) - 1)
    steps.insert(max(idx, 0), step)


def apply_rung(recipe: dict, rung: Rung) -> dict:
    """A copy of ``recipe`` with ``rung`` applied and recorded under ``recipe["rungs"]``."""
    r = copy.deepcopy(recipe)
    k = rung.kind
    if k in (RungKind.INSTALL_MODULE, RungKind.PYTEST_PLUGIN):
        _insert_step(r, {"name": f"ladder:{rung.arg}", "required": False, "try": [f"pip install '{rung.arg}'"]})
    elif k is RungKind.INSTALL_EXTRA:  # after the package step: the package again, with the extra
        idx = next((i for i, s in enumerate(r["install"]) if s["name"].startswith("package")), len(r["install"]) - 1)
        r["install"].insert(idx + 1, {"name": f"ladder:extra:{rung.arg}", "required": False, "try": [
            f"pip install -e '.[{rung.arg}]'", f"pip install --no-build-isolation -e '.[{rung.arg}]'"]})
    elif k is RungKind.APT_PACKAGE:
        r["apt_packages"] = sorted(set(r.get("apt_packages") or []) | {rung.arg})
    elif k is RungKind.NEXT_EXTRA:
        old = r["sources"].get("extra")
        new = None if rung.arg == "none" else rung.arg
        for s in r["install"]:
            if s["name"].startswith("package"):
                s["try"] = [t.replace(f"'.[{old}]'", f"'.[{new}]'" if new else ".") for t in s["try"]]
                s["name"] = f"package[{new}]" if new else "package"
        r["sources"]["extra"] = new
    elif k is RungKind.AS_OF_DATE:
        r["as_of"] = floor_as_of(rung.arg, r["python"])
    elif k in (RungKind.OLDER_PYTHON, RungKind.NEWER_PYTHON):
        r["python_reason"] = f"{r.get('python_reason', '')}; ladder: Python {r['python']} -> {rung.arg}".lstrip("; ")
        r["python"] = rung.arg
    elif k is RungKind.CLEAR_ADDOPTS:
        r["test_cmd"] = r["test_cmd"] + " -o addopts="
    elif k is RungKind.CONTINUE_COLLECTION:
        r["test_cmd"] = r["test_cmd"] + " --continue-on-collection-errors"
    elif k is RungKind.NEWEST_TEST_RUNNER:
        # after every other step (requirements, test deps and plugins pinned the old one), under the recipe's
        # as_of like every install; pytest's own dependencies follow it, plugins stay as installed
        r["install"].append({"name": f"ladder:{rung.arg}-newest", "required": True,
                             "try": [f"pip install --upgrade '{rung.arg}'"]})
    elif k is RungKind.PYTHONPATH:
        env = dict(r.get("test_env") or {})
        env["PYTHONPATH"] = ":".join(dict.fromkeys(
            [p for p in env.get("PYTHONPATH", "").split(":") if p] + ["/testbed", "/testbed/src", "/testbed/tests"]))
        r["test_env"] = env
    r["rungs"] = list(r.get("rungs") or []) + [rung.as_dict()]
    return r


def label_rung(recipe: Mapping, held: Mapping | None) -> Rung | None:
    """For validation of a row with given labels (``held``: :func:`crucible.pipelines.swe.labels.labels_hold`): the
    newest test runner when some given labels name tests this env never collected and the recipe is Crucible's
    inference (SWE-bench's own recipe is its labelling env: nothing to try) that has not tried it yet. The
    caller builds the env with it, validates again and keeps whichever env holds more of the given labels."""
    if not held or not held["not_collected"] or recipe.get("origin"):
        return None
    if any(r["kind"] == RungKind.NEWEST_TEST_RUNNER.value for r in recipe.get("rungs") or []):
        return None
    missing = held["not_collected"]
    return Rung(RungKind.NEWEST_TEST_RUNNER, "pytest",
                f"{len(missing)} given label(s) never collected in this env, e.g. {missing[0]}", Phase.TEST)
