"""`crucible stats | query | report | export | compact | store check`: look at, hand off and tidy stored data.

Every command here reads the committed rows only (the manifests' file lists), refuses a folder that is
not a store (exit 2, nothing created), and reports a damaged shard by name instead of a traceback."""

from __future__ import annotations

import argparse
import csv
import json
import sys


def _add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data", help="output directory holding the tables (default: data)")


def register(sub: argparse._SubParsersAction) -> None:
    _register_reading(sub)
    _register_export(sub)
    _register_upkeep(sub)


def _register_reading(sub: argparse._SubParsersAction) -> None:
    """stats, query, report: read the committed rows."""
    p = sub.add_parser("stats", help="headline numbers per table (counts, pass rates, rewards, drops)")
    _add_out(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_stats)

    p = sub.add_parser("query", help="run SQL against the DuckDB catalog (views: questions, "
                                     "browse_trajectories, swe_instances, swe_validations, swe_trajectories, failures)")
    p.add_argument("sql")
    _add_out(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object per row")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    p.set_defaults(func=_query)

    p = sub.add_parser("report", help="write an HTML report with PNG plots")
    _add_out(p)
    p.add_argument("--dest", help="report directory (default: <out>/report)")
    p.add_argument("--config", "-c", default="browse", help="config whose graph the browse audit checks against")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="config override for the audit's graph, e.g. --set search.kg.extra=[...]")
    p.set_defaults(func=_report)


def _register_export(sub: argparse._SubParsersAction) -> None:
    """export: the trainers' shapes (verl, TRL)."""
    p = sub.add_parser("export", help="export for trainers: verl RL parquet or TRL conversational SFT parquet")
    _add_out(p)
    p.add_argument("--format", required=True, choices=["verl", "trl"])
    p.add_argument("--source", choices=["browse", "swe", "all"], default=None,
                   help="which pipeline's data (verl: browse or swe, default browse; trl: default all)")
    p.add_argument("--split", help="verl browse: only questions with this split (default: the RL splits rl, sft+rl)")
    p.add_argument("--all-splits", action="store_true", help="verl browse: every question, also those rejected "
                                                             "for RL (split none)")
    p.add_argument("--all-trajectories", action="store_true", help="trl: not only SFT-split trajectories")
    p.add_argument("--pass-band", metavar="LO,HI", help="verl browse: only questions whose pass rate lies in the "
                   "band; LO,HI is open (0,1 = DAPO: all-wrong and all-correct questions out), a bracket closes an "
                   "end ([0,1) drops only the all-correct); default: no band")
    p.add_argument("--include-reference", action="store_true", help="trl: also the reference rows (split "
                   "reference: swe-curate's gold replays of the reference patch, a plumbing check)")
    p.add_argument("--include-semi", action="store_true", help="trl: also the semi_resolved rows (split semi: "
                   "unresolved swe trajectories that edited the right file and pass some F2P tests), marked in "
                   "column semi_resolved for turn-masked SFT")
    p.add_argument("--exclude-labels", metavar="CODES", help="swe: leave out instances carrying any of these quality "
                   "labels (comma-separated, e.g. B1_private_api,B3_network; docs/swe.md) and their trajectories")
    p.add_argument("--max-difficulty", metavar="SCORE", help="swe: only instances whose difficulty score is at most "
                   "SCORE (0..1)")
    p.add_argument("--difficulty-bands", metavar="BANDS", help="swe: only instances in these difficulty bands "
                   "(comma-separated: easy,medium,hard). Any of the three leaves out instances never assessed")
    p.add_argument("--dest", help="output .parquet (default: <out>/export/<format>-<source>.parquet); never "
                                  "inside the store but under <out>/export/")
    p.add_argument("--force", action="store_true", help="replace an existing --dest file")
    p.set_defaults(func=_export)


def _register_upkeep(sub: argparse._SubParsersAction) -> None:
    """compact, store check, store restore: tidy and repair a store."""
    p = sub.add_parser("compact", help="merge the many small committed shards into one per table and pipeline "
                                       "(faster queries; safe to interrupt; run when no pipeline writes to --out)")
    _add_out(p)
    p.add_argument("--pipeline", action="append", help="only this pipeline (repeatable; default: every one)")
    p.add_argument("--max-rows", type=int, default=200_000, help="rows per merged file at most, 1 or more "
                                                                 "(default 200000)")
    p.set_defaults(func=_compact)

    p = sub.add_parser("store", help="store maintenance: `store check` verifies every commit manifest against "
                                     "its shards")
    ssub = p.add_subparsers(dest="store_command", metavar="STORE_COMMAND")
    ssub.required = True
    c = ssub.add_parser("check", help="verify manifests, shard checksums, footers, row counts and data; name "
                                      "unreferenced shards and leftovers of killed runs; --quarantine moves damage "
                                      "aside, never deletes (exit 1 if damaged)")
    _add_out(c)
    c.add_argument("--fast", action="store_true", help="sizes, footers and row counts only (no sha256, do not "
                                                       "decode the data)")
    c.add_argument("--quarantine", action="store_true",
                   help="move each damaged commit (manifest and shards), damaged manifest and unreferenced shard to "
                        "_quarantine/ with its evidence (nothing is deleted; `store restore` brings back what is "
                        "intact, the next run redoes the rest)")
    c.add_argument("--repair", action="store_true",
                   help="rewrite crucible.duckdb and README.md from the commits readable now (readers never do)")
    c.set_defaults(func=_store_check)
    r = ssub.add_parser("restore", help="bring back every intact commit: rebuild lost or unreadable manifests from "
                                        "their shards' metadata, move intact quarantined commits back (exit 1 if "
                                        "some rows could not be restored)")
    _add_out(r)
    r.add_argument("--dry-run", action="store_true", help="say what would be restored, change nothing")
    r.set_defaults(func=_store_restore)


def _retry_io(fn):
    """Run ``fn`` again once when DuckDB lost a file under it (a compaction finished meanwhile: the
    second run lists the manifests afresh)."""
    import duckdb

    try:
        return fn()
    except duckdb.IOException:
        return fn()


def _warn_skipped(view) -> None:
    """The count and the fix (each skipped shard itself is logged once by catalog.store_view)."""
    if view.skipped:
        names = ", ".join(s.rel for s, _ in view.skipped[:5]) + (" ..." if len(view.skipped) > 5 else "")
        print(f"crucible: warning: {len(view.skipped)} unreadable shard(s) left out ({names}); `crucible store check "
              f"--out {view.out_dir}` for details", file=sys.stderr)
    _warn_unreferenced(view.out_dir)


def _warn_unreferenced(out_dir: str) -> None:
    """Rows no manifest names are not read: say so (a lost manifest must not drop rows silently), unless a
    writer holds the lock (its commit in flight)."""
    from crucible.pipelines.store import lock
    from crucible.pipelines.store.manifests import unreferenced_shards

    lost = unreferenced_shards(out_dir)
    if lost and lock.busy(out_dir) is None:
        names = ", ".join(lost[:3]) + (" ..." if len(lost) > 3 else "")
        print(f"crucible: warning: {len(lost)} shard(s) no manifest names are not read ({names}): a lost or damaged "
              f"manifest, or a killed run; `crucible store check --out {out_dir}` names them, `crucible store "
              f"restore --out {out_dir}` brings back intact commits", file=sys.stderr)


def _store_check(args) -> int:
    from crucible.pipelines.store.check import (
        check_store,
        format_report,
        quarantine,
        unresolved_after_quarantine,
    )

    rep = check_store(args.out, fast=args.fast)
    unresolved = rep.damaged
    if args.quarantine and rep.damaged:
        quarantine(args.out, rep)
        unresolved = unresolved_after_quarantine(args.out, rep)
    print(format_report(args.out, rep))
    if args.repair:
        from crucible.pipelines.store.catalog import repair_catalog

        print(repair_catalog(args.out))
    return 1 if unresolved else 0


def _store_restore(args) -> int:
    from crucible.pipelines.store.restore import format_restore, restore

    rep = restore(args.out, dry_run=args.dry_run)
    print(format_restore(args.out, rep))
    return 0 if rep.ok else 1


def _compact(args) -> int:
    from pathlib import Path

    from crucible.pipelines.store.commit import COMMITS_DIR
    from crucible.pipelines.store.compact import compact
    from crucible.pipelines.store.manifests import (
        StoreError,
        check_pipeline_name,
        pipelines_of,
        require_store,
    )

    if args.max_rows < 1:
        raise StoreError(f"--max-rows {args.max_rows}: must be at least 1 (rows per merged file); e.g. --max-rows "
                         "200000")
    for name in args.pipeline or ():
        check_pipeline_name(name, "--pipeline")
    require_store(args.out)
    from crucible.pipelines.store import fsio

    root = fsio.join(args.out, COMMITS_DIR)  # a bucket (s3://, gs://) has no folders: objects under the prefix
    if not (Path(root).is_dir() if fsio.is_local(root) else fsio.exists(root)):
        print(f"crucible: {args.out}: no committed data (no {COMMITS_DIR}/ folder); nothing to compact",
              file=sys.stderr)
        return 2
    names = args.pipeline or pipelines_of(args.out)
    unknown = [n for n in names if n not in pipelines_of(args.out)]
    if unknown:
        print(f"crucible: no commits of pipeline(s) {', '.join(unknown)} in {args.out}; present: "
              f"{', '.join(pipelines_of(args.out)) or 'none'}", file=sys.stderr)
        return 2
    from crucible.pipelines.store.manifests import read_manifests

    for name in names:  # a bad manifest is an error before the writer lock (or anything) is written
        read_manifests(args.out, name)
    status = 0
    for name in names:
        r = compact(args.out, name, max_rows=args.max_rows)
        print(f"{name}: {r.manifests_before} commits / {r.files_before} files -> {r.manifests_after} commits / "
              f"{r.files_after} files ({', '.join(f'{t} {n}' for t, n in sorted(r.rows.items())) or 'no rows'})")
        for why in r.skipped_groups:
            print(f"crucible: warning: {name}: a group of commits was not compacted: {why}", file=sys.stderr)
            status = 1
    return status


def _stats(args) -> int:
    import duckdb

    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.stats import compute_stats, engine_pool_stats, format_stats, llm_pool_stats

    view = catalog.store_view(args.out)
    _warn_skipped(view)
    first = [view]  # the first try reuses the view built above, a retry lists the manifests afresh

    def once():
        con = catalog.connect(args.out, view=first.pop() if first else None)
        try:
            return compute_stats(con)
        finally:
            con.close()

    try:
        s = _retry_io(once)
    except duckdb.Error as exc:
        print(f"crucible: stats failed: {catalog.explain_error(args.out, exc)}", file=sys.stderr)
        return 1
    if view.skipped:
        s["unreadable_shards"] = [s_.rel for s_, _ in view.skipped]
    s.update(llm_pool_stats(args.out))
    s.update(engine_pool_stats(args.out))
    print(json.dumps(s, indent=1, default=str) if args.json else format_stats(s))
    return 0


def _query(args) -> int:
    import duckdb

    from crucible.pipelines.store import catalog, readonly

    _warn_skipped(catalog.store_view(args.out))
    try:
        cols, rows = catalog.query(args.out, args.sql)
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        print(f"crucible: query failed: {exc}", file=sys.stderr)
        return 1
    except duckdb.Error as exc:
        refused = readonly.explain_refusal(exc)
        if refused:
            print(f"crucible: error: {refused}", file=sys.stderr)
            return 2
        print(f"crucible: query failed: {catalog.explain_error(args.out, exc)}", file=sys.stderr)
        return 1
    if args.json:
        for r in rows:
            print(json.dumps(dict(zip(cols, r)), default=str))
    elif args.csv:
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        widths = [max([len(str(c))] + [len(str(r[i])) for r in rows[:200]]) for i, c in enumerate(cols)]
        widths = [min(w, 60) for w in widths]
        print("  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
        for r in rows:
            print("  ".join(str(v)[:60].ljust(w) for v, w in zip(r, widths)))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", file=sys.stderr)
    return 0


def _browse_audit_section(out: str, config: str, overrides: list[str]) -> list[tuple[str, str]]:
    """The browse audit (graph-grounded) for the report, when the store holds questions."""
    from crucible.pipelines.browse import audit as A
    from crucible.pipelines.commands.browse_cmd import compute_browse_audit
    from crucible.pipelines.config import load_config
    from crucible.pipelines.store import catalog

    _, rows = catalog.query(out, "SELECT count(*) FROM questions")
    if not rows[0][0]:
        return []
    cfg = load_config(config, [*overrides, f"run.out_dir={out}"])
    return [("Browse audit (crucible browse audit)", A.format_audit(compute_browse_audit(cfg)))]


def _report(args) -> int:
    import duckdb

    from crucible.pipelines.store import catalog
    from crucible.pipelines.store.report import report_dir, write_report

    _warn_skipped(catalog.store_view(args.out))
    report_dir(args.out, args.dest)  # a folder inside the store is refused before anything runs
    sections = _browse_audit_section(args.out, args.config, args.overrides)
    try:
        page = _retry_io(lambda: write_report(args.out, args.dest, sections))
    except duckdb.Error as exc:
        print(f"crucible: report failed: {catalog.explain_error(args.out, exc)}", file=sys.stderr)
        return 1
    print(f"report written: {page}")
    return 0


def _export(args) -> int:
    from pathlib import Path

    import duckdb

    from crucible.pipelines.integrations.export import export
    from crucible.pipelines.store import catalog, fsio
    from crucible.pipelines.swe.quality_select import parse_filter

    source = args.source or ("browse" if args.format == "verl" else "all")
    # a store in a bucket exports to ./export/ here (the export is a local file)
    dest = args.dest or str(Path(args.out if fsio.is_local(args.out) else ".") / "export" /
                            f"{args.format}-{source}.parquet")
    _warn_skipped(catalog.store_view(args.out))
    try:
        n = _retry_io(lambda: export(args.out, args.format, dest, source=source, split=args.split,
                                     only_sft=not args.all_trajectories, all_splits=args.all_splits, force=args.force,
                                     pass_band=args.pass_band, include_reference=args.include_reference,
                                     include_semi=args.include_semi, instance_filter=parse_filter(
                                         args.exclude_labels, args.max_difficulty, args.difficulty_bands)))
    except duckdb.Error as exc:
        print(f"crucible: export failed: {catalog.explain_error(args.out, exc)}", file=sys.stderr)
        return 1
    print(f"wrote {n} rows to {dest}")
    return 0
