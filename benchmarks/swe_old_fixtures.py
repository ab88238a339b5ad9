"""SWE-bench-format fixtures at old commits, built from sdists of old releases (issue 15): does Crucible's own
recipe inference reproduce the labels SWE-bench's install tables give, and what does as-of-date resolution
change?

Each release in ``RELEASES`` (a repo and version SWE-bench's table covers; ``--releases recent``: pallets/flask
2.0, psf/requests 2.26-2.27; ``--releases old``: 2018-2020 releases of psf/requests 2.19-2.25,
marshmallow-code/marshmallow 2.19-3.8 and pytest-dev/pytest 5.4, issue 24) becomes a commit of a local bare mirror ``<out>/mirrors/<owner>/<name>.git`` dated at the release
(``crucible.sandbox.sources.from_sdist``); bug candidates (``crucible.pipelines.swe.bugs``) are committed on it, each as a
SWE-bench-format row: ``base_commit`` = the bug, ``patch`` = its fix, ``environment_setup_commit`` = the
release, ``version`` = the table's version, ``created_at`` = the release day, ``test_patch`` = a one-line
marker on top of each test file that names the function (so the row's test directives are those files, as in a
SWE-bench row). Labels come from validating with SWE-bench's recipes (``--recipes auto``); the fixture file
keeps the rows that validate, with those labels. The same unlabelled rows are validated with Crucible's
inference, as of the release date (default) and with today's index, and the labels compared; the labelled
rows (``fixtures.jsonl``) are validated too, as a user validates SWE-bench rows: does each mode's env hold the
given labels (``labels_hold``; with inference, the label-guided rung may rebuild the env)::

    python -m benchmarks.swe_old_fixtures build --out DIR [--per-release 4]   # mirrors + DIR/unlabelled.jsonl
    crucible swe validate --instances DIR/unlabelled.jsonl --recipes auto --out DIR/label \\
        --repo-url-template file://DIR/mirrors/{owner}/{name}.git
    python -m benchmarks.swe_old_fixtures label --out DIR                    # DIR/fixtures.jsonl
    crucible swe validate --instances DIR/unlabelled.jsonl --recipes inferred --out DIR/inferred ...
    crucible swe validate ... --recipes inferred --out DIR/inferred_today --set sandbox.as_of_min_age_days=0
    crucible swe validate ... --recipes auto --out DIR/auto                  # SWE-bench's recipes, again
    crucible swe validate --instances DIR/fixtures.jsonl --recipes inferred --out DIR/inferred_given ...
    crucible swe validate --instances DIR/fixtures.jsonl --recipes auto --out DIR/auto_given ...
    python -m benchmarks.swe_old_fixtures compare --out DIR                  # JSON: per mode
    python -m benchmarks.swe_old_fixtures keep --out DIR [--dest tests/data/swe/old]  # rows + sources.json
    python -m benchmarks.swe_old_fixtures mirrors --out DIR2 [--dest tests/data/swe/old]  # DIR2/mirrors again

``build`` also writes ``sources.json`` (per row: the sdist, the bug diff, its commit message and branch);
``mirrors`` rebuilds the bare mirrors of kept rows from it, each commit with the row's sha (same tree, date
and identity), so the committed fixtures (``tests/data/swe/old/``) need no mirror in the repo.
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from crucible.pipelines.config import load_config
from crucible.pipelines.store.catalog import query
from crucible.pipelines.swe.bugs import candidates, inject, tests_for
from crucible.pipelines.swe.mirror import commit_patch, ensure_bare_mirror
from crucible.sandbox.api import settings_from_config
from crucible.sandbox.asof import commit_date
from crucible.sandbox.sources import from_sdist

# (sdist, SWE-bench repo, SWE-bench version, test folder, source paths to mutate): "recent" = 2021-2022 releases
# (issue 15), "old" = 2018-2020 releases (issue 24: the fixtures under tests/data/swe/old/)
RELEASES = {
    "recent": (
        ("Flask==2.0.1", "pallets/flask", "2.0", "tests",
         ["src/flask/helpers.py", "src/flask/config.py", "src/flask/scaffold.py"]),
        ("Flask==2.0.3", "pallets/flask", "2.0", "tests",
         ["src/flask/helpers.py", "src/flask/config.py", "src/flask/blueprints.py"]),
        ("requests==2.26.0", "psf/requests", "2.26", "tests",
         ["requests/utils.py", "requests/structures.py"]),
        ("requests==2.27.1", "psf/requests", "2.27", "tests",
         ["requests/utils.py", "requests/cookies.py", "requests/models.py"]),
    ),
    "old": (
        ("requests==2.19.1", "psf/requests", "2.19", "tests",
         ["requests/utils.py", "requests/structures.py", "requests/cookies.py"]),
        ("requests==2.22.0", "psf/requests", "2.22", "tests",
         ["requests/utils.py", "requests/structures.py", "requests/cookies.py"]),
        ("requests==2.25.1", "psf/requests", "2.25", "tests",
         ["requests/utils.py", "requests/models.py"]),
        ("marshmallow==2.19.5", "marshmallow-code/marshmallow", "2.19", "tests",
         ["src/marshmallow/utils.py", "src/marshmallow/validate.py"]),
        ("marshmallow==3.2.2", "marshmallow-code/marshmallow", "3.2", "tests",
         ["src/marshmallow/utils.py", "src/marshmallow/validate.py"]),
        ("marshmallow==3.8.0", "marshmallow-code/marshmallow", "3.8", "tests",
         ["src/marshmallow/utils.py", "src/marshmallow/validate.py"]),
        ("pytest==5.4.3", "pytest-dev/pytest", "5.4", "testing",
         ["src/_pytest/_io/saferepr.py", "src/_pytest/_code/source.py"]),
    ),
}


SOURCES = "sources.json"


def marker_patch(tree: Path, files: list[str], function: str) -> str:
    """A git diff putting ``# covers <function>`` on top of each test file (the row's test directives)."""
    out = []
    for rel in files:
        old = (tree / rel).read_text(encoding="utf-8")
        new = f"# covers {function}\n" + old
        body = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                            f"a/{rel}", f"b/{rel}", n=3))
        out.append(f"diff --git a/{rel} b/{rel}\n{body}")
    return "".join(out)


def build(out: Path, per_release: int, seed: int, releases: str = "recent") -> list[dict]:

    rows, sources = [], {}
    for sdist, repo, version, tests, include in (r for k, rs in RELEASES.items() if releases in (k, "all") for r in rs):
        co = from_sdist(sdist, _sdist_dir(), pip=(sys.executable, "-m", "pip"))
        day = commit_date(co.path)
        cands = [c for c in candidates(co.path, seed=seed, max_candidates=per_release * 4, include=include)
                 if tests_for(co.path, c.function, [tests])][:per_release]
        insts, broken = inject(co, repo, out / "mirrors", cands, source_ref=f"sdist:{sdist}")
        for inst in insts:
            fn = inst["meta"]["function"]
            files = tests_for(co.path, fn, [tests])
            rows.append({"repo": repo, "instance_id": inst["instance_id"].replace(".inj-", f"-v{version}-"),
                         "base_commit": inst["base_commit"], "patch": inst["patch"],
                         "test_patch": marker_patch(co.path, files, fn.rsplit(".", 1)[-1]),
                         "problem_statement": f"{fn} misbehaves ({sdist}).", "hints_text": "",
                         "created_at": f"{day}T12:00:00Z" if day else None, "version": version,
                         "environment_setup_commit": co.commit, "FAIL_TO_PASS": None, "PASS_TO_PASS": None})
            # what rebuilds the mirror commit by commit (same tree, date and identity -> same sha)
            sources[rows[-1]["instance_id"]] = {"sdist": sdist, "bug": inst["meta"]["bug_diff"],
                                                "branch": f"crucible/{inst['instance_id']}",
                                                "message": _message(out / "mirrors", repo, inst["base_commit"])}
        print(f"{sdist}: {len(insts)} rows ({len(broken)} bugs did not apply), release {day}", flush=True)
    path = out / "unlabelled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / SOURCES).write_text(json.dumps(sources, indent=1, sort_keys=True) + "\n")
    print(f"{len(rows)} rows -> {path}")
    return rows


def _sdist_dir() -> Path:
    return settings_from_config(load_config("swe", []).sandbox).cache_dir / "sdists"


def _message(mirror_root: Path, repo: str, sha: str) -> str:
    """The bug commit's message as the mirror holds it (part of what makes its sha)."""
    owner, name = repo.split("/", 1)
    return subprocess.run(["git", "log", "-1", "--format=%B", sha], cwd=mirror_root / owner / f"{name}.git",
                          capture_output=True, text=True, check=True).stdout.strip()


def keep(out: Path, dest: Path) -> list[dict]:
    """The labelled rows (``out/fixtures.jsonl``) and what rebuilds their mirrors, copied to ``dest``; with
    ``out/auto_given`` (the rows validated again with SWE-bench's own recipes), only the rows whose given
    labels hold there: a label SWE-bench's env does not reproduce on a rerun (a test id made from the clock,
    ``test_x[15:37:03``) is no test of our inference. The dropped rows are printed with their labels."""
    rows = [json.loads(x) for x in (out / "fixtures.jsonl").read_text().splitlines()]
    rerun = _validations(out / "auto_given") if (out / "auto_given").exists() else {}
    gone = {i: list(v["labels_not_held"]) for i, v in rerun.items() if v["labels_hold"] is not True}
    for i, labels in gone.items():
        print(f"dropped {i}: given labels SWE-bench's recipes do not reproduce: {labels[:5]}")
    rows = [r for r in rows if r["instance_id"] not in gone]
    sources = json.loads((out / SOURCES).read_text())
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "fixtures.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    kept = {r["instance_id"]: sources[r["instance_id"]] for r in rows}
    (dest / SOURCES).write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
    print(f"{len(rows)} rows -> {dest}")
    return rows


def mirrors(fixtures: Path, mirror_root: Path, only: set[str] | None = None) -> list[dict]:
    """Rebuild the local mirrors of the rows in ``fixtures`` (a folder with ``fixtures.jsonl`` and
    ``sources.json``) under ``mirror_root``, from the releases' sdists (PyPI, cached): each env commit and
    bug commit comes out with the row's sha, or this raises (the rows then name commits nobody can rebuild).
    Returns the rows (``only``: those instance ids)."""

    rows = [json.loads(x) for x in (fixtures / "fixtures.jsonl").read_text().splitlines()]
    rows = [r for r in rows if only is None or r["instance_id"] in only]
    sources = json.loads((fixtures / SOURCES).read_text())
    for row in rows:
        src = sources[row["instance_id"]]
        co = from_sdist(src["sdist"], _sdist_dir(), pip=(sys.executable, "-m", "pip"))
        if co.commit != row["environment_setup_commit"]:
            raise RuntimeError(f"{row['instance_id']}: {src['sdist']} rebuilt as {co.commit}, the row names "
                               f"{row['environment_setup_commit']}")
        mirror = ensure_bare_mirror(co.path, mirror_root, row["repo"])
        sha = commit_patch(mirror, co.commit, src["bug"], src["message"], src["branch"])
        if sha != row["base_commit"]:
            raise RuntimeError(f"{row['instance_id']}: bug commit rebuilt as {sha}, the row names {row['base_commit']}")
    return rows


def _validations(store: Path) -> dict[str, dict]:

    cols, rows = query(str(store), "select * from swe_validations")
    return {r["instance_id"]: r for r in (dict(zip(cols, x)) for x in rows)}


def label(out: Path) -> list[dict]:
    """The rows SWE-bench's recipes validate, with the labels that validation computed."""
    vals = _validations(out / "label")
    kept = []
    for line in (out / "unlabelled.jsonl").read_text().splitlines():
        row = json.loads(line)
        v = vals.get(row["instance_id"])
        if v and v["status"] == "valid":
            kept.append({**row, "FAIL_TO_PASS": json.dumps(list(v["fail_to_pass"])),
                         "PASS_TO_PASS": json.dumps(list(v["pass_to_pass"]))})
    (out / "fixtures.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(f"{len(kept)} of {len(vals)} rows valid under SWE-bench's recipes -> {out / 'fixtures.jsonl'}")
    return kept


def _ids(ids) -> frozenset[str]:
    # pytest < 4 prints a class's instance into node ids (t.py::TestA::()::test_x): the same test
    return frozenset(t.replace("::()", "") for t in (ids if ids is not None else ()))


def compare(out: Path) -> dict:
    """Per mode (each a ``crucible swe validate`` store under ``out``: ``label`` = SWE-bench's recipes, whose
    labels are the fixtures', ``auto`` = SWE-bench's recipes again (its own reproducibility), ``inferred`` =
    Crucible's inference as of the release, ``inferred_today`` = today's index): rows valid;
    of the rows SWE-bench's recipes label (the fixtures), those whose labels this mode computes exactly
    (``exact``) and those whose labels hold in this mode's env (``consistent``: every labelled F2P test fails
    before and passes after, every labelled P2P test passes both, so the gold patch and an empty patch get
    the grades SWE-bench's env gives them); per test, of the fixtures' labels (F2P and P2P entries) those
    that hold (``labels_held``, the others under ``not_held``) and the labels this mode adds (tests SWE-bench's
    env does not run or fails both ways); then the rows where modes differ, with the reason."""
    rows = [json.loads(x)["instance_id"] for x in (out / "unlabelled.jsonl").read_text().splitlines()]
    per = {m: _validations(out / m) for m in ("label", "auto", "inferred", "inferred_today") if (out / m).exists()}
    given = {m: _validations(out / m) for m in ("auto_given", "inferred_given") if (out / m).exists()}
    ref = per.get("label", {})

    def labels(v):
        return (_ids(v["fail_to_pass"]), _ids(v["pass_to_pass"])) if v and v["status"] == "valid" else None

    fixtures = [i for i in rows if labels(ref.get(i))]
    n_labels = sum(len(labels(ref[i])[0]) + len(labels(ref[i])[1]) for i in fixtures)
    res: dict = {"rows": len(rows), "fixtures": len(fixtures), "fixture_labels": n_labels, "modes": {},
                 "differ": [], "not_held": {}}
    for m, vals in per.items():
        got = {i: labels(vals.get(i)) for i in rows}
        exact = [i for i in fixtures if got[i] == labels(ref[i])]
        consistent = [i for i in fixtures if got[i] and labels(ref[i])[0] <= got[i][0] and labels(ref[i])[1] <= got[i][1]]
        # per test: a fixture's F2P (P2P) test that is F2P (P2P) here too is held; every other one is listed
        missed = {i: sorted((labels(ref[i])[0] - got[i][0]) | (labels(ref[i])[1] - got[i][1])) if got[i]
                  else sorted(labels(ref[i])[0] | labels(ref[i])[1]) for i in fixtures}
        res["modes"][m] = {"valid": sum(1 for i in rows if got[i]), "exact": len(exact), "consistent": len(consistent),
                           "labels_held": n_labels - sum(map(len, missed.values())),
                           "labels_added": sum(len(got[i][0] - labels(ref[i])[0]) + len(got[i][1] - labels(ref[i])[1])
                                               for i in fixtures if got[i]),
                           "stops": dict(Counter(((vals.get(i) or {}).get("reason") or "not run").split(":")[0]
                                                 for i in rows if not got[i]))}
        if any(missed.values()):
            res["not_held"][m] = {i: t for i, t in missed.items() if t}
    # the labelled rows validated with their labels given: rows whose given labels hold in the env (and equal the
    # computed ones), the label-guided rungs kept, and the given labels that do not hold
    for m, vals in given.items():
        vs = [vals[i] for i in fixtures if i in vals]
        rungs = [json.loads(v["meta"]).get("label_rung") if isinstance(v["meta"], str) else (v["meta"] or {}).get("label_rung")
                 for v in vs]
        res["modes"][m] = {"rows": len(vs), "labels_hold": sum(v["labels_hold"] is True for v in vs),
                           "labels_match": sum(v["labels_match"] is True for v in vs),
                           "valid": sum(v["status"] == "valid" for v in vs),
                           "label_rungs": sum(r is not None for r in rungs),
                           "label_rungs_kept": sum(bool(r and r.get("kept")) for r in rungs),
                           "labels_not_held": sum(len(v["labels_not_held"] or ()) for v in vs)}
        bad = {v["instance_id"]: list(v["labels_not_held"]) for v in vs if v["labels_not_held"] is not None
               and len(v["labels_not_held"])}
        if bad:
            res["not_held"][m] = bad
    for i in rows:
        got = {m: labels(vals.get(i)) for m, vals in per.items()}
        if len(set(got.values())) > 1:
            res["differ"].append({"instance_id": i, **{
                m: (f"valid F2P {len(got[m][0])} P2P {len(got[m][1])}" if got[m] else
                    f"{(vals.get(i) or {}).get('status')}: {((vals.get(i) or {}).get('reason') or '')[:120]}")
                for m, vals in per.items()}})
    print(json.dumps(res, indent=2))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["build", "label", "compare", "keep", "mirrors"])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--per-release", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--releases", choices=[*RELEASES, "all"], default="recent")
    ap.add_argument("--dest", type=Path, default=Path("tests/data/swe/old"),
                    help="keep: where the labelled rows go; mirrors: the fixtures folder to rebuild from")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    {"build": lambda: build(a.out, a.per_release, a.seed, a.releases), "label": lambda: label(a.out),
     "compare": lambda: compare(a.out), "keep": lambda: keep(a.out, a.dest),
     "mirrors": lambda: mirrors(a.dest, a.out / "mirrors")}[a.step]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
