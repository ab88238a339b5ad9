"""The pages of ``crucible view``: from a DuckDB cursor and a validated request to ``(title, body HTML)``.

:func:`route` maps path segments and query parameters to a page, checking every parameter against its
declaration (:mod:`crucible.pipelines.view.params`) before any query runs; the SQL lives in
:mod:`crucible.pipelines.view.queries`, the HTML pieces in :mod:`crucible.pipelines.view.render`. A list page costs one
small ``LIMIT/OFFSET`` query however large the store is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlencode

from crucible.pipelines.store.records import record_type
from crucible.pipelines.view import params as V
from crucible.pipelines.view import queries as Q
from crucible.pipelines.view.params import BadRequest, NotFound  # noqa: F401 - the errors a page raises
from crucible.pipelines.view.render import (
    cell,
    conversation,
    diff_html,
    esc,
    evidence_list,
    fields,
    link,
    pager,
    quote_key,
    row_path,
)
from crucible.pipelines.view.tables import VIEWS

Page = tuple[str, str]  # (title, body HTML)


# ------------------------------------------------------------------ lists

def _filter_form(cur, table: str, args: Mapping) -> str:
    form = [f'<form class="f" method="get" action="/{table}">']
    for f in VIEWS[table].filters:
        opts = "".join(f'<option value="{esc(v)}"{" selected" if str(args.get(f, "")) == v else ""}>{esc(v)} '
                       f'({n})</option>' for v, n in Q.filter_options(cur, table, f))
        form.append(f'<label>{esc(f)} <select name="{esc(f)}"><option value="">any</option>{opts}</select></label>')
    form.append('<button type="submit">filter</button></form>')
    return "".join(form)


def list_page(cur, table: str, args: Mapping) -> Page:
    view = VIEWS[table]
    rows, more, total = Q.list_rows(cur, table, args)
    sort, order = args.get("sort", view.sort), ("DESC" if args.get("desc") == "1" else "ASC")
    offset = int(args.get("offset", 0))
    base = {k: v for k, v in args.items() if k != "offset"}
    key = record_type(table).key
    head = "".join(f"<th>{link(f'/{table}?' + urlencode({**base, 'sort': c, 'desc': '1' if sort == c and order == 'ASC' else '0'}), c)}</th>"  # noqa: E501
                   for c in view.columns)
    body = "".join("<tr>" + "".join(f"<td>{link(row_path(table, r[key]), r[key])}</td>" if c == key
                                    else f"<td>{cell(r[c])}</td>" for c in view.columns) + "</tr>" for r in rows)
    deeper = more and offset + V.PAGE_SIZE <= V.MAX_OFFSET
    note = f"rows {offset + 1 if rows else 0}–{offset + len(rows)} of {total}"
    if more and not deeper:
        note += f" (pages past row {V.MAX_OFFSET:,} are not shown: narrow the list with a filter)"
    nav = pager(f"/{table}?{urlencode({**base, 'offset': max(0, offset - V.PAGE_SIZE)})}" if offset else None,
                f"/{table}?{urlencode({**base, 'offset': offset + V.PAGE_SIZE})}" if deeper else None, note)
    return f"{table} ({total})", _filter_form(cur, table, args) + f"<table><tr>{head}</tr>{body}</table>" + nav


# ------------------------------------------------------------------ one row

def _neighbours(cur, table: str, key_value: str) -> str:
    prev, nxt = Q.neighbours(cur, table, key_value)
    return pager(None if prev is None else row_path(table, prev), None if nxt is None else row_path(table, nxt),
                 "keys j / k")


def browse_trajectory_page(cur, traj_id: str) -> Page:
    t = Q.get_row(cur, "browse_trajectories", traj_id)
    q = Q.fetch(cur, "SELECT evidence FROM questions WHERE question_id = ?", [t["question_id"]])
    verdict_cls = "ok" if t.get("verdict") == "correct" else "bad"
    verdict = (f"verdict <span class='{verdict_cls}'>{esc(t.get('verdict'))}</span> by {esc(t.get('verdict_source'))}"
               if t.get("verdict") else "<span class='k'>not judged</span>")
    # an outside question (crucible browse rollout) has no questions row: no link to one
    qlink = (link(row_path("questions", t["question_id"]), t["question_id"]) if q
             else f"{esc(t['question_id'])} <span class='k'>(outside question)</span>")
    reasoning = t.get("judge_raw") if t.get("verdict") else (t.get("meta") or {}).get("verdict_reason")
    side = (f"<p>{verdict} · split <b>{esc(t.get('split'))}</b> · question {qlink}"
            f" · {link('/questions/' + quote_key(t['question_id']) + '/compare', 'compare its rollouts')}</p>"
            f"<p><b>Q:</b> {esc(t.get('question'))}<br><b>gold:</b> {esc(t.get('answer'))} "
            f"<span class='k'>{esc(', '.join(t.get('answer_aliases') or []))}</span><br>"
            f"<b>answer:</b> {esc(t.get('extracted_answer'))}</p>"
            f"<p><b>verdict reasoning:</b> {esc(reasoning)}</p>")
    evidence = Q.decode("questions", q[0]).get("evidence") or [] if q else []
    urls = "".join(f"<li>{esc(u)}</li>" for u in t.get("retrieved_urls") or [])
    facts = fields(t, ["reward_total", "reward_outcome", "reward_format", "reward_clue", "drop_reasons",
                       "termination", "n_turns", "n_tool_calls", "n_tool_errors", "leak_flags", "policy_model"])
    body = (side + _neighbours(cur, "browse_trajectories", traj_id)
            + f"<div class='grid'><div><h3>conversation</h3>{conversation(t.get('messages'))}</div>"
            f"<div><h3>evidence</h3><ul>{evidence_list(evidence)}</ul><h3>retrieved URLs</h3><ul>{urls}</ul>"
            f"<h3>rewards and drops</h3>{facts}</div></div>")
    return f"trajectory {traj_id}", body


def question_page(cur, qid: str) -> Page:
    q = Q.get_row(cur, "questions", qid)
    trajs = Q.fetch(cur, "SELECT traj_id, extracted_answer, verdict, split, n_tool_calls FROM browse_trajectories "
                         "WHERE question_id = ? ORDER BY sample_index", [qid])
    tl = "".join(f"<li>{link(row_path('browse_trajectories', r['traj_id']), r['traj_id'])}: {esc(r['extracted_answer'])}"
                 f" — {esc(r['verdict'])} ({esc(r['split'])}, {esc(r['n_tool_calls'])} calls)</li>" for r in trajs)
    lineage = "".join(
        f"<tr><td>{esc(e.get('round'))}</td><td>{esc(e.get('operator'))}</td><td>{'✔' if e.get('accepted') else '✘'}</td>"
        f"<td>{esc(e.get('question_after'))}</td><td class='k'>{cell(e.get('checks'), 300)}</td></tr>"
        for e in q.get("lineage") or [])
    body = (f"<p><b>{esc(q['question'])}</b></p><p>answer <b>{esc(q['answer'])}</b> ({esc(q.get('answer_type'))}) · "
            f"pass rate {esc(q.get('pass_rate'))} · split {esc(q.get('split'))} · "
            f"{link('/questions/' + quote_key(qid) + '/compare', 'compare rollouts')}</p>"
            + _neighbours(cur, "questions", qid)
            + f"<h3>trajectories</h3><ul>{tl}</ul><h3>evidence chain</h3><ol>{evidence_list(q.get('evidence') or [])}"
            f"</ol><h3>hardening lineage</h3><table><tr><th>round</th><th>operator</th><th>accepted</th><th>question</th>"
            f"<th>checks</th></tr>{lineage}</table>"
            f"<h3>formalization</h3><pre>{esc(json.dumps(q.get('formalization'), indent=1, ensure_ascii=False))}</pre>")
    return f"question {qid}", body


def compare_page(cur, qid: str) -> Page:
    rows = [Q.decode("browse_trajectories", r) for r in Q.fetch(
        cur, "SELECT * FROM browse_trajectories WHERE question_id = ? ORDER BY sample_index", [qid])]
    found = Q.fetch(cur, "SELECT question, answer FROM questions WHERE question_id = ?", [qid])
    if not found and not rows:
        raise NotFound(f"questions/{qid}")
    q = found[0] if found else {"question": rows[0]["question"], "answer": rows[0].get("answer")}  # outside question
    cols = "".join(f"<div><h3>{link(row_path('browse_trajectories', t['traj_id']), t['traj_id'])}: "
                   f"{esc(t.get('verdict'))}</h3>{conversation(t.get('messages'))}</div>" for t in rows)
    grid = f"<div style='display:grid;grid-template-columns:repeat({max(1, len(rows))},1fr);gap:10px'>{cols}</div>"
    return f"rollouts of {qid}", f"<p>{esc(q['question'])} — gold <b>{esc(q['answer'])}</b></p>{grid}"


def _tests(names, before, after) -> str:
    return "".join(f"<tr><td><code>{esc(n)}</code></td><td>{esc(before.get(n) if isinstance(before, dict) else '')}"
                   f"</td><td>{esc(after.get(n) if isinstance(after, dict) else '')}</td></tr>" for n in names or [])


def _quality(r: dict) -> str:
    """The instance's difficulty and quality labels (pipelines/swe/quality.py), each label with its reason."""
    d = r.get("difficulty") or {}
    head = (f"<p>difficulty <b>{esc(d.get('band'))}</b> ({esc(d.get('score'))}: {esc(d.get('files'))} file(s), "
            f"{esc(d.get('lines'))} line(s), {esc(d.get('f2p'))} F2P, distance {esc(d.get('distance'))}, agent pass "
            f"rate {esc(d.get('pass_rate'))})</p>" if d else "<p>difficulty: not assessed</p>")
    labels = r.get("quality_labels")
    items = "".join(f"<li><code>{esc(x.get('code'))}</code> {esc(x.get('reason'))}</li>" for x in labels or [])
    return head + (f"<h3>quality labels</h3><ul>{items}</ul>" if items else
                   f"<p>quality labels: {'none' if labels is not None else 'not assessed'}</p>")


def swe_instance_page(cur, iid: str) -> Page:
    r = Q.get_row(cur, "swe_instances", iid)
    val = Q.fetch(cur, "SELECT * FROM swe_validations WHERE instance_id = ? LIMIT 1", [iid])
    v = Q.decode("swe_validations", val[0]) if val else {}
    trajs = Q.fetch(cur, "SELECT traj_id, policy, resolved, reward, split FROM swe_trajectories WHERE instance_id = ? "
                         "ORDER BY traj_id", [iid])
    before, after = v.get("tests_before") or {}, v.get("tests_after") or {}
    tl = "".join(f"<li>{link(row_path('swe_trajectories', t['traj_id']), t['traj_id'])} {esc(t['policy'])}: "
                 f"resolved {esc(t['resolved'])}, reward {esc(t['reward'])}, split {esc(t['split'])}</li>" for t in trajs)
    table_head = "<table><tr><th>test</th><th>before</th><th>after</th></tr>"
    body = (f"<p>{esc(r.get('repo'))} @ <code>{esc(r.get('base_commit'))}</code> · source {esc(r.get('source'))} · "
            f"validation {link(row_path('swe_validations', iid), v.get('status', 'none'))}</p>"
            + _neighbours(cur, "swe_instances", iid)
            + _quality(r) + f"<h3>problem statement</h3><pre>{esc(r.get('problem_statement'))}</pre>"
            f"<h3>trajectories</h3><ul>{tl}</ul><div class='grid'><div><h3>patch</h3>{diff_html(r.get('patch'))}</div>"
            f"<div><h3>test patch</h3>{diff_html(r.get('test_patch'))}</div></div>"
            f"<h3>FAIL_TO_PASS</h3>{table_head}{_tests(r.get('FAIL_TO_PASS'), before, after)}</table>"
            f"<h3>PASS_TO_PASS</h3>{table_head}{_tests(r.get('PASS_TO_PASS'), before, after)}</table>")
    return f"instance {iid}", body


def swe_trajectory_page(cur, traj_id: str) -> Page:
    t = Q.get_row(cur, "swe_trajectories", traj_id)
    cls = "ok" if t.get("resolved") else "bad"
    body = (f"<p>instance {link(row_path('swe_instances', t['instance_id']), t['instance_id'])} · policy "
            f"{esc(t.get('policy'))} · <span class='{cls}'>resolved {esc(t.get('resolved'))}</span> · grade "
            f"{esc(t.get('grade_reason'))} · reward {esc(t.get('reward'))} · split {esc(t.get('split'))}</p>"
            + _neighbours(cur, "swe_trajectories", traj_id)
            + fields(t, ["f2p_passed", "f2p_total", "p2p_passed", "p2p_total", "exit_status", "drop_reasons"])
            + f"<div class='grid'><div><h3>conversation</h3>{conversation(t.get('messages'))}</div>"
            f"<div><h3>model patch</h3>{diff_html(t.get('model_patch'))}</div></div>")
    return f"swe trajectory {traj_id}", body


def generic_row_page(cur, table: str, key_value: str) -> Page:
    r = Q.get_row(cur, table, key_value)
    body = _neighbours(cur, table, key_value) + "<dl>" + "".join(
        f"<dt>{esc(k)}</dt><dd><pre>{esc(json.dumps(v, indent=1, ensure_ascii=False, default=str))}</pre></dd>"
        for k, v in r.items()) + "</dl>"
    if table == "swe_validations":
        body = f"<p>{link(row_path('swe_instances', key_value), 'instance')}</p>" + body
    return f"{table} {key_value}", body


ROW_PAGES = {"browse_trajectories": browse_trajectory_page, "questions": question_page,
             "swe_instances": swe_instance_page, "swe_trajectories": swe_trajectory_page}


def row_page(cur, table: str, key_value: str) -> Page:
    fn = ROW_PAGES.get(table)
    return fn(cur, key_value) if fn else generic_row_page(cur, table, key_value)


# ------------------------------------------------------------------ search, index

def search_page(cur, text: str) -> Page:
    form = (f'<form class="f" method="get" action="/search"><input name="q" size="60" maxlength="{V.MAX_TEXT}" '
            f'value="{esc(text)}"><button>search</button></form>')
    if not text.strip():
        return "search questions and answers", form
    qs, ts = Q.search(cur, text.strip())
    ql = "".join(f"<li>{link(row_path('questions', r['question_id']), r['question_id'])}: {esc(r['question'])} "
                 f"→ {esc(r['answer'])}</li>" for r in qs)
    tl = "".join(f"<li>{link(row_path('browse_trajectories', r['traj_id']), r['traj_id'])}: "
                 f"{esc(r['extracted_answer'])} ({esc(r['verdict'])})</li>" for r in ts)
    return f"search: {text}", (form + f"<h3>questions ({len(qs)})</h3><ul>{ql}</ul>"
                               f"<h3>final answers ({len(ts)})</h3><ul>{tl}</ul>")


def index_page(cur) -> Page:
    return "store", "<ul>" + "".join(f"<li>{link('/' + t, t)}: {n}</li>" for t, n in Q.counts(cur).items()) + "</ul>"


def route(cur, parts: list[str], query: Mapping[str, str]) -> Page:
    """The page at path ``parts`` (decoded segments) with ``query``; every parameter validated first."""
    where = "/" + "/".join(parts)
    if not parts:
        V.validate((), query, where)
        return index_page(cur)
    if parts == ["search"]:
        return search_page(cur, str(V.validate(V.SEARCH_PARAMS, query, where).get("q", "")))
    table = parts[0]
    if table not in VIEWS or len(parts) > 3 or (len(parts) == 3 and (table != "questions" or parts[2] != "compare")):
        raise NotFound(where)
    if len(parts) == 1:
        return list_page(cur, table, V.validate(V.list_params(table), query, where))
    V.validate((), query, where)
    key = V.key(parts[1])
    return compare_page(cur, key) if len(parts) == 3 else row_page(cur, table, key)
