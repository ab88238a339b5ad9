"""Local bare git mirrors of old releases (``benchmarks/asof_repos.yaml``: ``owner/name: [NAME==VERSION,
...]``, oldest first) under ``--root``, one commit per release dated by its upload day and tagged
``v<version>`` (``crucible.sandbox.sources.release_mirror``), and the ``--repos`` file of ``crucible sandbox survey``
listing every tag. Rerunning keeps what is tagged (same shas).

    python -m benchmarks.asof_mirrors --root /tmp/asof-mirrors [--list FILE] [--out FILE]
    crucible sandbox survey --repos /tmp/asof-mirrors/repos.txt \\
        --repo-url-template 'file:///tmp/asof-mirrors/{owner}/{name}.git' --out OUT [--set ...]
    python -m benchmarks.asof_mirrors --compare TODAY_OUT DEFAULT_OUT   # the markdown table of docs/sandbox.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from crucible.pipelines.store.catalog import query
from crucible.pipelines.swe.mirror import mirror_template
from crucible.pipelines.textio import read_text
from crucible.sandbox.hostenv import host_pip_env
from crucible.sandbox.sources import SDIST_RE, release_mirror, release_tag

DEFAULT_LIST = Path(__file__).with_name("asof_repos.yaml")


def read_list(path: Path) -> dict[str, list[str]]:
    """``{owner/name: [NAME==VERSION, ...]}`` from the YAML list; a bad entry is an error naming it."""
    data = yaml.safe_load(read_text(path, "release list")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping owner/name: [NAME==VERSION, ...]")
    for repo, specs in data.items():
        if not isinstance(repo, str) or repo.count("/") != 1:
            raise ValueError(f"{path}: key {repo!r} is not owner/name")
        if not isinstance(specs, list) or not specs or not all(isinstance(s, str) and SDIST_RE.match(s)
                                                               for s in specs):
            raise ValueError(f"{path}: {repo}: expected a non-empty list of NAME==VERSION, got {specs!r}")
    return data


def build(root: Path, releases: dict[str, list[str]], workdir: Path, remote_env: dict | None = None,
          on_repo=None) -> list[str]:
    """Mirror every repo of ``releases`` under ``root``; the ``owner/name@v<version>`` lines of the tags."""
    lines = []
    for repo, specs in releases.items():
        t0 = time.monotonic()
        shas = release_mirror(root, repo, specs, workdir, remote_env=remote_env)
        lines += [f"{repo}@{release_tag(v)}" for v in shas]
        if on_repo:
            on_repo({"repo": repo, "commits": shas, "seconds": round(time.monotonic() - t0, 1)})
    return lines


def survey_rows(out_dir: str) -> dict[str, dict]:
    cols, rows = query(out_dir, "select * from sandbox_surveys order by created_at")
    out = {}
    for r in rows:
        d = dict(zip(cols, r))
        d["rungs"] = json.loads(d["rungs"]) if isinstance(d["rungs"], str) else (d["rungs"] or [])
        out[d["source"]] = d
    return out


def compare(today_out: str, default_out: str) -> str:
    """Markdown: per source, the stage with today's index and no ladder vs the defaults."""
    today, default = survey_rows(today_out), survey_rows(default_out)

    def stage(r):
        return f"{r['stage']} ({r['passed']}/{r['tests_collected']})" if r else "-"

    lines = ["| source | commit date | py | today's index | deciding line | as of | defaults | rungs |",
             "|---|---|---|---|---|---|---|---|"]
    for src in [*today, *(s for s in default if s not in today)]:
        t, d = today.get(src), default.get(src)
        ref = t or d
        rungs = ", ".join(f"{g['kind']}:{g['arg']}" for g in (d or {}).get("rungs", [])) or "-"
        line = ((t or {}).get("stop_line") or "").replace("|", "/")[:90]
        lines.append(f"| {src.removeprefix('git:')} | {ref['source_date'] or '-'} | {ref['python'] or '-'} | "
                     f"{stage(t)} | {line} | {((d or {}).get('as_of') or '-')[:10]} | {stage(d)} | {rungs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.asof_mirrors", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="mirrors go to ROOT/<owner>/<name>.git")
    ap.add_argument("--list", default=str(DEFAULT_LIST), help="YAML owner/name: [NAME==VERSION, ...]")
    ap.add_argument("--out", help="the --repos file to write (default ROOT/repos.txt)")
    ap.add_argument("--compare", nargs=2, metavar=("TODAY_OUT", "DEFAULT_OUT"),
                    help="print the table of two survey stores (today's index, no ladder / defaults) and exit")
    args = ap.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return []
    if not args.root:
        ap.error("--root is required (or --compare)")
    root = Path(args.root).resolve()
    rows: list[dict] = []

    def show(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    lines = build(root, read_list(Path(args.list)), root / "_sdists", remote_env=host_pip_env(), on_repo=show)
    out = Path(args.out or root / "repos.txt")
    out.write_text(f"# written by python -m benchmarks.asof_mirrors from {Path(args.list).name}\n"
                   + "".join(f"{ln}\n" for ln in lines))

    print(f"{len(lines)} sources -> {out}; --repo-url-template '{mirror_template(root)}'", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
