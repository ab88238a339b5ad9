"""Server-rendered pages of ``crucible view``: pure functions from a DuckDB cursor and a request to HTML.

Lists page with ``LIMIT/OFFSET`` over parameterized SQL (filters and sort columns are checked against
each table's schema, never pasted in), so a page costs one small query however large the store is.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pipelines.store.records import TABLES, record_type

PAGE_SIZE = 50
OBSERVATION_LINES = 12


@dataclass(frozen=True)
class TableView:
    """What a list of one table shows: columns, filterable columns (equality), default sort."""

    table: str
    columns: tuple[str, ...]
    filters: tuple[str, ...]
    sort: str
    title_col: str


VIEWS: dict[str, TableView] = {
    "questions": TableView("questions", ("question_id", "question", "answer", "answer_type", "hops", "difficulty",
                                         "pass_rate", "split"),
                           ("split", "difficulty", "hops", "answer_type", "pattern_hash"), "question_id", "question"),
    "browse_trajectories": TableView(
        "browse_trajectories", ("traj_id", "question_id", "extracted_answer", "verdict", "verdict_source", "split",
                                "termination", "n_tool_calls", "reward_total"),
        ("verdict", "verdict_source", "split", "termination", "question_id", "n_tool_calls"), "traj_id", "prediction"),
    "swe_instances": TableView("swe_instances", ("instance_id", "repo", "source", "bug_operator", "statement_origin"),
                               ("repo", "source", "bug_operator", "statement_origin"), "instance_id",
                               "problem_statement"),
    "swe_validations": TableView("swe_validations", ("instance_id", "status", "reason", "labels_match", "labels_hold",
                                                     "n_runs",
                                                     "duration_s"),
                                 ("status", "labels_match", "labels_hold"), "instance_id", "reason"),
    "swe_trajectories": TableView("swe_trajectories", ("traj_id", "instance_id", "policy", "resolved", "grade_reason",
                                                       "exit_status", "reward", "split"),
                                  ("resolved", "split", "policy", "instance_id", "exit_status"), "traj_id",
                                  "grade_reason"),
    "sandbox_surveys": TableView("sandbox_surveys", ("survey_id", "source", "stage", "python", "as_of",
                                                     "tests_collected", "passed", "failed", "stop_rung", "seconds"),
                                 ("stage", "python", "stop_rung"), "source", "stop_line"),
    "swe_grades": TableView("swe_grades", ("grade_id", "instance_id", "model_name_or_path", "resolved", "grade",
                                           "f2p_passed", "f2p_failed", "p2p_failed"),
                            ("resolved", "grade", "model_name_or_path", "instance_id"), "instance_id", "reason"),
    "failures": TableView("failures", ("failure_id", "pipeline", "stage", "kind", "item_key", "reason"),
                          ("pipeline", "stage", "kind"), "created_at", "reason"),
}
assert set(VIEWS) == set(TABLES), "every table has a view"

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222} header{background:#24292f;color:#fff;padding:8px 16px}
header a{color:#fff;margin-right:14px;text-decoration:none} main{padding:12px 16px}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;
vertical-align:top} th a{color:#222} tr.sel{background:#fff3c4} .msg{border-left:4px solid #999;margin:8px 0;
padding:4px 10px;background:#fafafa} .msg.user{border-color:#4c72b0} .msg.assistant{border-color:#55a868}
.msg.tool{border-color:#c44e52;background:#fff} .msg.system{border-color:#8172b2} pre{white-space:pre-wrap;
margin:4px 0;font:12px/1.4 ui-monospace,monospace} .k{color:#666;font-size:12px} .ok{color:#1a7f37;font-weight:600}
.bad{color:#cf222e;font-weight:600} .add{background:#e6ffec} .del{background:#ffebe9} .hunk{color:#8250df}
form.f{margin:8px 0} form.f select,form.f input{margin-right:8px} .pager a{margin-right:12px} dl{margin:0}
dt{font-weight:600;margin-top:6px} dd{margin:0 0 0 12px} .grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
"""

KEYS_JS = """
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
  const nav = k => { const a = document.querySelector('a[data-key="' + k + '"]'); if (a) location = a.href; };
  if (e.key === 'j' || e.key === 'ArrowRight') nav('next');
  if (e.key === 'k' || e.key === 'ArrowLeft') nav('prev');
});
"""


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def link(path: str, text: Any, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<a href="{esc(path)}"{extra}>{esc(text)}</a>'


def row_path(table: str, key: Any) -> str:
    return f"/{table}/{_quote(key)}"


def _quote(key: Any) -> str:
    from urllib.parse import quote

    return quote(str(key), safe="")


def page(title: str, body: str) -> str:
    nav = " ".join(link(f"/{t}", t) for t in VIEWS) + link("/search", "search")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)} - crucible view</title>"
            f"<style>{CSS}</style></head><body><header>{link('/', 'crucible')} {nav}</header>"
            f"<main><h2>{esc(title)}</h2>{body}</main><script>{KEYS_JS}</script></body></html>")


def _fetch(cur, sql: str, params: Sequence = ()) -> list[dict]:
    res = cur.execute(sql, list(params))
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def _decode(table: str, row: Mapping) -> dict:
    return record_type(table).decode(dict(row))


def _cell(v: Any, limit: int = 90) -> str:
    if isinstance(v, float):
        v = round(v, 3)
    s = "" if v is None else (json.dumps(v) if isinstance(v, list | dict) else str(v))
    return esc(s if len(s) <= limit else s[: limit - 1] + "…")


# ------------------------------------------------------------------ lists

def list_page(cur, table: str, query: Mapping[str, str]) -> str:
    view = VIEWS.get(table)
    if view is None:
        raise NotFound(table)
    cols = set(record_type(table).columns)
    where, params = [], []
    for f in view.filters:
        if query.get(f):
            where.append(f"CAST({f} AS VARCHAR) = ?")
            params.append(query[f])
    if query.get("reason"):  # trajectories: a drop reason prefix
        if "drop_reasons" not in cols:
            raise BadRequest("reason filter is for trajectory tables")
        where.append("len(list_filter(drop_reasons, r -> starts_with(r, ?))) > 0")
        params.append(query["reason"])
    sort = query.get("sort") or view.sort
    if sort not in cols:
        raise BadRequest(f"cannot sort by {sort!r}: not a column of {table}")
    order = "DESC" if query.get("desc") == "1" else "ASC"
    try:
        offset = max(0, int(query.get("offset") or 0))
    except ValueError:
        raise BadRequest("offset must be an integer") from None
    sql_where = (" WHERE " + " AND ".join(where)) if where else ""
    key = record_type(table).key
    rows = _fetch(cur, f"SELECT {', '.join(view.columns)} FROM {table}{sql_where} ORDER BY {sort} {order}, {key} "
                       f"LIMIT {PAGE_SIZE + 1} OFFSET {offset}", params)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    total = cur.execute(f"SELECT count(*) FROM {table}{sql_where}", params).fetchone()[0]
    # filter form: one select per filter column with its values (top 50 by count)
    form = [f'<form class="f" method="get" action="/{table}">']
    for f in view.filters:
        opts = cur.execute(f"SELECT CAST({f} AS VARCHAR) v, count(*) n FROM {table} GROUP BY 1 ORDER BY 2 DESC "
                           "LIMIT 50").fetchall()
        sel = "".join(f'<option value="{esc(v)}"{" selected" if query.get(f) == v else ""}>{esc(v)} ({n})</option>'
                      for v, n in opts if v is not None)
        form.append(f'<label>{esc(f)} <select name="{esc(f)}"><option value="">any</option>{sel}</select></label>')
    form.append('<button type="submit">filter</button></form>')
    base = {k: v for k, v in query.items() if k != "offset" and v}
    head = "".join(f"<th>{link('/' + table + '?' + urlencode({**base, 'sort': c, 'desc': '1' if sort == c and order == 'ASC' else '0'}), c)}</th>" for c in view.columns)  # noqa: E501
    body = []
    for r in rows:
        cells = [f"<td>{link(row_path(table, r[key]), r[key])}</td>" if c == key else f"<td>{_cell(r[c])}</td>"
                 for c in view.columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    pager = ['<p class="pager">']
    if offset:
        pager.append(link(f"/{table}?{urlencode({**base, 'offset': max(0, offset - PAGE_SIZE)})}", "← previous",
                          data_key="prev"))
    if more:
        pager.append(link(f"/{table}?{urlencode({**base, 'offset': offset + PAGE_SIZE})}", "next →", data_key="next"))
    pager.append(f"<span class='k'>rows {offset + 1 if rows else 0}–{offset + len(rows)} of {total}</span></p>")
    return page(f"{table} ({total})", "".join(form) + f"<table><tr>{head}</tr>{''.join(body)}</table>" + "".join(pager))


# ------------------------------------------------------------------ one row

def _get(cur, table: str, key_value: str) -> dict:
    key = record_type(table).key
    rows = _fetch(cur, f"SELECT * FROM {table} WHERE {key} = ? LIMIT 1", [key_value])
    if not rows:
        raise NotFound(f"{table}/{key_value}")
    return _decode(table, rows[0])


def _neighbours(cur, table: str, key_value: str) -> str:
    key = record_type(table).key
    prev = cur.execute(f"SELECT max({key}) FROM {table} WHERE {key} < ?", [key_value]).fetchone()[0]
    nxt = cur.execute(f"SELECT min({key}) FROM {table} WHERE {key} > ?", [key_value]).fetchone()[0]
    parts = ['<p class="pager">']
    if prev is not None:
        parts.append(link(row_path(table, prev), "← previous", data_key="prev"))
    if nxt is not None:
        parts.append(link(row_path(table, nxt), "next →", data_key="next"))
    parts.append("<span class='k'>keys j / k</span></p>")
    return "".join(parts)


def _fields(row: Mapping, names: Sequence[str]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(n)}</dt><dd>{_cell(row.get(n), 400)}</dd>" for n in names if n in row) + "</dl>"


def _fold(text: str, max_lines: int = OBSERVATION_LINES) -> str:
    lines = (text or "").splitlines()
    if len(lines) <= max_lines:
        return f"<pre>{esc(text)}</pre>"
    return (f"<pre>{esc(chr(10).join(lines[:max_lines]))}</pre><details><summary>{len(lines) - max_lines} more lines"
            f"</summary><pre>{esc(chr(10).join(lines[max_lines:]))}</pre></details>")


def _args(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, indent=1, ensure_ascii=False)


def conversation(messages: Sequence[Mapping]) -> str:
    """A trajectory as a conversation; each step has an anchor (#step-N) for deep links."""
    out = []
    for i, m in enumerate(messages or []):
        role = m.get("role", "?")
        parts = [f'<div class="msg {esc(role)}" id="step-{i}"><span class="k">{link(f"#step-{i}", f"#{i}")} '
                 f'{esc(role)}{" · " + esc(m.get("name")) if m.get("name") else ""}</span>']
        if m.get("reasoning_content"):
            parts.append(f"<details><summary>thinking</summary><pre>{esc(m['reasoning_content'])}</pre></details>")
        if m.get("content"):
            parts.append(_fold(m["content"]) if role == "tool" else f"<pre>{esc(m['content'])}</pre>")
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            parts.append(f"<div>→ <b>{esc(fn.get('name'))}</b><pre>{esc(_args(fn.get('arguments')))}</pre></div>")
        parts.append("</div>")
        out.append("".join(parts))
    return "".join(out)


def diff_html(text: str | None) -> str:
    lines = []
    for ln in (text or "").splitlines():
        cls = ("add" if ln.startswith("+") and not ln.startswith("+++") else
               "del" if ln.startswith("-") and not ln.startswith("---") else "hunk" if ln.startswith("@@") else "")
        lines.append(f'<span class="{cls}">{esc(ln)}</span>' if cls else esc(ln))
    return "<pre class='diff'>" + "\n".join(lines) + "</pre>"


def browse_trajectory_page(cur, traj_id: str) -> str:
    t = _get(cur, "browse_trajectories", traj_id)
    q = _fetch(cur, "SELECT evidence FROM questions WHERE question_id = ?", [t["question_id"]])
    verdict_cls = "ok" if t.get("verdict") == "correct" else "bad"
    verdict = (f"verdict <span class='{verdict_cls}'>{esc(t.get('verdict'))}</span> by {esc(t.get('verdict_source'))}"
               if t.get("verdict") else "<span class='k'>not judged</span>")
    # an outside question (crucible browse rollout) has no questions row: no link to one
    qlink = (link(row_path("questions", t["question_id"]), t["question_id"]) if q
             else f"{esc(t['question_id'])} <span class='k'>(outside question)</span>")
    reasoning = t.get("judge_raw") if t.get("verdict") else (t.get("meta") or {}).get("verdict_reason")
    side = (f"<p>{verdict} · split <b>{esc(t.get('split'))}</b> · question {qlink}"
            f" · {link('/questions/' + _quote(t['question_id']) + '/compare', 'compare its rollouts')}</p>"
            f"<p><b>Q:</b> {esc(t.get('question'))}<br><b>gold:</b> {esc(t.get('answer'))} "
            f"<span class='k'>{esc(', '.join(t.get('answer_aliases') or []))}</span><br>"
            f"<b>answer:</b> {esc(t.get('extracted_answer'))}</p>"
            f"<p><b>verdict reasoning:</b> {esc(reasoning)}</p>")
    evidence = _decode("questions", q[0]).get("evidence") or [] if q else []
    ev = "".join(f"<li>{esc(e.get('fact'))} <span class='k'>{esc(e.get('url'))}</span></li>" for e in evidence)
    urls = "".join(f"<li>{esc(u)}</li>" for u in t.get("retrieved_urls") or [])
    facts = _fields(t, ["reward_total", "reward_outcome", "reward_format", "reward_clue", "drop_reasons",
                        "termination", "n_turns", "n_tool_calls", "n_tool_errors", "leak_flags", "policy_model"])
    body = (side + _neighbours(cur, "browse_trajectories", traj_id)
            + f"<div class='grid'><div><h3>conversation</h3>{conversation(t.get('messages'))}</div>"
            f"<div><h3>evidence</h3><ul>{ev}</ul><h3>retrieved URLs</h3><ul>{urls}</ul><h3>rewards and drops</h3>"
            f"{facts}</div></div>")
    return page(f"trajectory {traj_id}", body)


def question_page(cur, qid: str) -> str:
    q = _get(cur, "questions", qid)
    trajs = _fetch(cur, "SELECT traj_id, extracted_answer, verdict, split, n_tool_calls FROM browse_trajectories "
                        "WHERE question_id = ? ORDER BY sample_index", [qid])
    tl = "".join(f"<li>{link(row_path('browse_trajectories', r['traj_id']), r['traj_id'])}: {esc(r['extracted_answer'])}"
                 f" — {esc(r['verdict'])} ({esc(r['split'])}, {r['n_tool_calls']} calls)</li>" for r in trajs)
    lineage = "".join(
        f"<tr><td>{esc(e.get('round'))}</td><td>{esc(e.get('operator'))}</td><td>{'✔' if e.get('accepted') else '✘'}</td>"
        f"<td>{esc(e.get('question_after'))}</td><td class='k'>{_cell(e.get('checks'), 300)}</td></tr>"
        for e in q.get("lineage") or [])
    ev = "".join(f"<li>{esc(e.get('fact'))} <span class='k'>{esc(e.get('url'))}</span></li>"
                 for e in q.get("evidence") or [])
    body = (f"<p><b>{esc(q['question'])}</b></p><p>answer <b>{esc(q['answer'])}</b> ({esc(q.get('answer_type'))}) · "
            f"pass rate {esc(q.get('pass_rate'))} · split {esc(q.get('split'))} · "
            f"{link('/questions/' + _quote(qid) + '/compare', 'compare rollouts')}</p>"
            + _neighbours(cur, "questions", qid)
            + f"<h3>trajectories</h3><ul>{tl}</ul><h3>evidence chain</h3><ol>{ev}</ol>"
            f"<h3>hardening lineage</h3><table><tr><th>round</th><th>operator</th><th>accepted</th><th>question</th>"
            f"<th>checks</th></tr>{lineage}</table>"
            f"<h3>formalization</h3><pre>{esc(json.dumps(q.get('formalization'), indent=1, ensure_ascii=False))}</pre>")
    return page(f"question {qid}", body)


def compare_page(cur, qid: str) -> str:
    rows = [_decode("browse_trajectories", r) for r in _fetch(
        cur, "SELECT * FROM browse_trajectories WHERE question_id = ? ORDER BY sample_index", [qid])]
    found = _fetch(cur, "SELECT question, answer FROM questions WHERE question_id = ?", [qid])
    if not found and not rows:
        raise NotFound(f"questions/{qid}")
    q = found[0] if found else {"question": rows[0]["question"], "answer": rows[0].get("answer")}  # outside question
    cols = "".join(f"<div><h3>{link(row_path('browse_trajectories', t['traj_id']), t['traj_id'])}: "
                   f"{esc(t.get('verdict'))}</h3>{conversation(t.get('messages'))}</div>" for t in rows)
    grid = f"<div style='display:grid;grid-template-columns:repeat({max(1, len(rows))},1fr);gap:10px'>{cols}</div>"
    return page(f"rollouts of {qid}", f"<p>{esc(q['question'])} — gold <b>{esc(q['answer'])}</b></p>{grid}")


def swe_instance_page(cur, iid: str) -> str:
    r = _get(cur, "swe_instances", iid)
    val = _fetch(cur, "SELECT * FROM swe_validations WHERE instance_id = ? LIMIT 1", [iid])
    v = _decode("swe_validations", val[0]) if val else {}
    trajs = _fetch(cur, "SELECT traj_id, policy, resolved, reward, split FROM swe_trajectories WHERE instance_id = ? "
                        "ORDER BY traj_id", [iid])
    before, after = v.get("tests_before") or {}, v.get("tests_after") or {}

    def tests(names):
        return "".join(f"<tr><td><code>{esc(n)}</code></td><td>{esc(before.get(n) if isinstance(before, dict) else '')}"
                       f"</td><td>{esc(after.get(n) if isinstance(after, dict) else '')}</td></tr>" for n in names or [])

    tl = "".join(f"<li>{link(row_path('swe_trajectories', t['traj_id']), t['traj_id'])} {esc(t['policy'])}: "
                 f"resolved {esc(t['resolved'])}, reward {esc(t['reward'])}, split {esc(t['split'])}</li>" for t in trajs)
    body = (f"<p>{esc(r.get('repo'))} @ <code>{esc(r.get('base_commit'))}</code> · source {esc(r.get('source'))} · "
            f"validation {link(row_path('swe_validations', iid), v.get('status', 'none'))}</p>"
            + _neighbours(cur, "swe_instances", iid)
            + f"<h3>problem statement</h3><pre>{esc(r.get('problem_statement'))}</pre>"
            f"<h3>trajectories</h3><ul>{tl}</ul><div class='grid'><div><h3>patch</h3>{diff_html(r.get('patch'))}</div>"
            f"<div><h3>test patch</h3>{diff_html(r.get('test_patch'))}</div></div>"
            f"<h3>FAIL_TO_PASS</h3><table><tr><th>test</th><th>before</th><th>after</th></tr>"
            f"{tests(r.get('FAIL_TO_PASS'))}</table><h3>PASS_TO_PASS</h3><table><tr><th>test</th><th>before</th>"
            f"<th>after</th></tr>{tests(r.get('PASS_TO_PASS'))}</table>")
    return page(f"instance {iid}", body)


def swe_trajectory_page(cur, traj_id: str) -> str:
    t = _get(cur, "swe_trajectories", traj_id)
    cls = "ok" if t.get("resolved") else "bad"
    body = (f"<p>instance {link(row_path('swe_instances', t['instance_id']), t['instance_id'])} · policy "
            f"{esc(t.get('policy'))} · <span class='{cls}'>resolved {esc(t.get('resolved'))}</span> · grade "
            f"{esc(t.get('grade_reason'))} · reward {esc(t.get('reward'))} · split {esc(t.get('split'))}</p>"
            + _neighbours(cur, "swe_trajectories", traj_id)
            + _fields(t, ["f2p_passed", "f2p_total", "p2p_passed", "p2p_total", "exit_status", "drop_reasons"])
            + f"<div class='grid'><div><h3>conversation</h3>{conversation(t.get('messages'))}</div>"
            f"<div><h3>model patch</h3>{diff_html(t.get('model_patch'))}</div></div>")
    return page(f"swe trajectory {traj_id}", body)


def generic_row_page(cur, table: str, key_value: str) -> str:
    r = _get(cur, table, key_value)
    body = _neighbours(cur, table, key_value) + "<dl>" + "".join(
        f"<dt>{esc(k)}</dt><dd><pre>{esc(json.dumps(v, indent=1, ensure_ascii=False, default=str))}</pre></dd>"
        for k, v in r.items()) + "</dl>"
    if table == "swe_validations":
        body = f"<p>{link(row_path('swe_instances', key_value), 'instance')}</p>" + body
    return page(f"{table} {key_value}", body)


ROW_PAGES = {"browse_trajectories": browse_trajectory_page, "questions": question_page,
             "swe_instances": swe_instance_page, "swe_trajectories": swe_trajectory_page}


def row_page(cur, table: str, key_value: str) -> str:
    if table not in VIEWS:
        raise NotFound(table)
    fn = ROW_PAGES.get(table)
    return fn(cur, key_value) if fn else generic_row_page(cur, table, key_value)


def search_page(cur, text: str) -> str:
    form = (f'<form class="f" method="get" action="/search"><input name="q" size="60" value="{esc(text)}">'
            '<button>search</button></form>')
    if not text.strip():
        return page("search questions and answers", form)
    pat = f"%{text.strip()}%"
    qs = _fetch(cur, "SELECT question_id, question, answer FROM questions WHERE question ILIKE ? OR answer ILIKE ? "
                     "ORDER BY question_id LIMIT 100", [pat, pat])
    ts = _fetch(cur, "SELECT traj_id, extracted_answer, verdict FROM browse_trajectories WHERE extracted_answer "
                     "ILIKE ? OR prediction ILIKE ? ORDER BY traj_id LIMIT 100", [pat, pat])
    ql = "".join(f"<li>{link(row_path('questions', r['question_id']), r['question_id'])}: {esc(r['question'])} "
                 f"→ {esc(r['answer'])}</li>" for r in qs)
    tl = "".join(f"<li>{link(row_path('browse_trajectories', r['traj_id']), r['traj_id'])}: "
                 f"{esc(r['extracted_answer'])} ({esc(r['verdict'])})</li>" for r in ts)
    return page(f"search: {text}", form + f"<h3>questions ({len(qs)})</h3><ul>{ql}</ul>"
                f"<h3>final answers ({len(ts)})</h3><ul>{tl}</ul>")


def index_page(cur) -> str:
    items = []
    for t in VIEWS:
        n = cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        items.append(f"<li>{link('/' + t, t)}: {n}</li>")
    return page("store", "<ul>" + "".join(items) + "</ul>")
