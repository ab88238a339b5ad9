"""``crucible report``: an HTML page with PNG plots of the stats.

The report's folder (``<out>/report/`` by default, or ``--dest``) is the only thing it writes: the store is
read through the read-only connection (:func:`crucible.pipelines.store.catalog.connect`), a ``--dest`` inside the store
other than ``<out>/report/`` is refused, and the plots and the page are made in memory first, then written
through the one atomic writer (:mod:`crucible.pipelines.store.fsio`): a failure leaves no file and no temp file."""

from __future__ import annotations

import html
import io
import json
import os
import textwrap
from pathlib import Path
from urllib.parse import urlencode

from crucible.pipelines.store import catalog, fsio
from crucible.pipelines.store.manifests import StoreError
from crucible.pipelines.store.stats import compute_stats, format_stats

REPORT_DIR = "report"  # <out>/report/: the one folder inside a store the report writes

VIEW_URL = "http://127.0.0.1:8765"  # `crucible view --out DIR` (default port)


def _wrap(label: object, width: int = 38) -> str:
    """A long label on several lines (never cut: the reason is the point of the plot)."""

    return "\n".join(textwrap.wrap(str(label), width)[:3]) or str(label)


def _bar(ax, pairs, title, xlabel=""):
    labels = [_wrap(p[0]) for p in pairs]
    values = [p[-1] if len(p) == 2 else p[1] for p in pairs]
    ax.barh(labels[::-1], values[::-1], color="#4c72b0")
    if all(float(v).is_integer() for v in values):  # counts: whole-number ticks
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel or "count")


def _hist(ax, values, title, bins=20, integer=False):
    """A histogram; ``integer`` (counts: tool calls, turns) puts one bar on each whole number."""
    from matplotlib.ticker import MaxNLocator

    vals = [v for v in values if v is not None]
    if integer and vals:
        lo, hi = int(min(vals)), int(max(vals))
        bins = [x - 0.5 for x in range(lo, hi + 2)]
        if hi - lo <= 20:
            ax.set_xticks(range(lo, hi + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.hist(vals, bins=bins, color="#55a868")
    ax.set_title(title)
    ax.set_ylabel("rows")


def _view_links(stats: dict) -> str:
    """Links from the report's numbers to the viewer's filtered lists (`crucible view --out DIR`)."""

    links = []
    bt = stats.get("browse_trajectories") or {}
    for verdict, n in bt.get("verdicts") or []:
        links.append((f"browse trajectories, verdict {verdict} ({n})", "browse_trajectories", {"verdict": verdict}))
    for split, n in bt.get("split") or []:
        links.append((f"browse trajectories, split {split} ({n})", "browse_trajectories", {"split": split}))
    for status, n in (stats.get("swe_validations") or {}).get("status") or []:
        links.append((f"SWE validations, status {status} ({n})", "swe_validations", {"status": status}))
    if stats.get("failures"):
        links.append(("failures", "failures", {}))
    items = "".join(f"<li><a href='{VIEW_URL}/{t}{'?' + urlencode(q) if q else ''}'>{html.escape(text)}</a></li>"
                    for text, t, q in links)
    return ("<h2>Look at the rows</h2><p>Start <code>crucible view --out DIR</code>, then follow a link:</p>"
            f"<ul>{items}</ul>")


def report_dir(out_dir: str, dest: str | None) -> Path:
    """The report's folder: ``dest``, or ``<out_dir>/report`` (``./report`` for a bucket); refused inside the store anywhere else (its
    files are the writers'), or when it is a file."""
    d = Path(dest) if dest else Path(out_dir if fsio.is_local(out_dir) else ".") / REPORT_DIR  # a bucket: here
    real, store = Path(os.path.realpath(d)), Path(os.path.realpath(out_dir))
    own = store / REPORT_DIR
    if (real == store or store in real.parents) and real != own and own not in real.parents:
        raise StoreError(f"--dest {dest}: inside the store {out_dir}, whose files only its writers write; give a "
                         f"folder outside it, or {Path(out_dir) / REPORT_DIR} (the default)")
    if d.exists() and not d.is_dir():
        raise StoreError(f"--dest {dest}: is a file; give a folder for index.html and its plots")
    return d


def _figures(con, stats: dict) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG bytes) of each plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: list[tuple[str, str, bytes]] = []

    def save(fig, name, caption):
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        plots.append((name, caption, buf.getvalue()))

    fig, ax = plt.subplots(figsize=(6, 3))
    _bar(ax, list(stats["counts"].items()), "rows per table")
    save(fig, "counts.png", "Rows per table")
    bt = stats.get("browse_trajectories")
    if bt:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
        _bar(axes[0], bt["verdicts"], "verdicts")
        _hist(axes[1], [r[0] for r in con.execute("SELECT reward_total FROM browse_trajectories").fetchall()],
              "reward_total")
        _hist(axes[2], [r[0] for r in con.execute("SELECT n_tool_calls FROM browse_trajectories").fetchall()],
              "tool calls per trajectory", integer=True)
        save(fig, "browse.png", "Browse trajectories: verdicts, rewards, tool calls")
    q = stats.get("questions")
    if q:
        fig, ax = plt.subplots(figsize=(5, 3))
        _bar(ax, q["by_hops"], "questions by hops")
        save(fig, "questions.png", "Questions by number of hops")
    sv = stats.get("swe_validations")
    if sv:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        _bar(axes[0], sv["status"], "validation status")
        if sv["reasons"]:
            _bar(axes[1], [(r[0], r[1]) for r in sv["reasons"]], "rejection reasons")
        save(fig, "swe_validation.png", "SWE validation funnel")
    if stats.get("swe_funnel"):
        save(_funnel_figure(plt, stats["swe_funnel"]), "swe_funnel.png",
             "swe-curate funnel: rows in and kept at each stage, with the top drop reason")
    ss = stats.get("sandbox_surveys")
    if ss:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        _bar(axes[0], [tuple(p) for p in ss["funnel"]], "sources reaching each stage (cumulative)")
        if ss["stops"]:
            _bar(axes[1], [tuple(p) for p in ss["stops"]], "stops: stage and last rung")
        save(fig, "sandbox_survey.png", "crucible sandbox survey: sources per stage, and where the rest stopped")
    st = stats.get("swe_trajectories")
    if st:
        fig, ax = plt.subplots(figsize=(5, 3))
        _bar(ax, [(r[0], r[2] or 0) for r in st["resolved_by_policy"]], "resolved rate by policy", "rate")
        save(fig, "swe_traj.png", "SWE trajectories resolved rate")
    f = stats.get("failures")
    if f:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        _bar(ax, [(f"{r[1]}: {r[2]}", r[3]) for r in f["by_reason"][:12]], "failures by stage and reason")
        save(fig, "failures.png", "Failures and drops by reason")
    return plots


def _funnel_figure(plt, funnel: list[dict]):
    fig, ax = plt.subplots(figsize=(9, 3.4))
    labels = [f["stage"] for f in funnel][::-1]
    ax.barh(labels, [f["in"] for f in funnel][::-1], color="#dddddd", label="in")
    ax.barh(labels, [f["kept"] for f in funnel][::-1], color="#4c72b0", label="kept")
    for y, f in enumerate(funnel[::-1]):
        top = max(f["drops"].items(), key=lambda kv: kv[1], default=None)
        if f["in"] > f["kept"] and top:
            ax.text(f["in"], y, f"  -{f['in'] - f['kept']} ({top[0][:30]})", va="center", fontsize=8)
    ax.set_title("swe-curate funnel (candidates and instances, then trajectories)")
    ax.set_xlabel("rows")
    ax.set_xlim(0, max(f["in"] for f in funnel) * 1.6 or 1)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def write_report(out_dir: str, dest: str | None = None, sections: list[tuple[str, str]] = ()) -> Path:
    """The report page; ``sections`` are extra (title, preformatted text) blocks a caller adds
    (``crucible report`` adds the browse audit)."""
    con = catalog.connect(out_dir)  # refuses a folder that is not a store before anything is written
    try:
        dest_dir = report_dir(out_dir, dest)
        stats = compute_stats(con)
        plots = _figures(con, stats)
    finally:
        con.close()
    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Crucible report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f5f5f5;padding:1em;overflow-x:auto}img{max-width:100%;height:auto}</style>",
        f"</head><body><h1>Crucible report</h1><p>Data: {html.escape(str(Path(out_dir).resolve()))}</p>",
    ]
    for name, caption, _ in plots:
        body.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}"
                    "</figcaption></figure>")
    body.append(_view_links(stats))
    for title, text in sections:
        body.append(f"<h2>{html.escape(title)}</h2><pre>{html.escape(text)}</pre>")
    body.append(f"<h2>Numbers</h2><pre>{html.escape(format_stats(stats))}</pre>")
    body.append(f"<script type='application/json' id='stats'>{html.escape(json.dumps(stats, default=str))}</script>")
    body.append("</body></html>")
    for name, _, data in plots:
        fsio.write_bytes_atomic(str(dest_dir / name), data)
    page = dest_dir / "index.html"
    fsio.write_bytes_atomic(str(page), "\n".join(body).encode("utf-8"))  # last: the page names the plots
    return page
