"""HTML of ``crucible view``: the page frame, escaping, links and the pieces pages share (conversations,
diffs, folded observations). Pure functions of their arguments; no query runs here.

Every value from the store or a request goes through :func:`esc` (or :func:`link`, which escapes both
its target and its text).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from crucible.pipelines.view.tables import VIEWS

OBSERVATION_LINES = 12

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
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;margin:0 0 10px} .err{white-space:pre-wrap}
"""

KEYS_JS = """
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
  const nav = k => { const a = document.querySelector('a[data-key="' + k + '"]'); if (a) location = a.href; };
  if (e.key === 'j' || e.key === 'ArrowRight') nav('next');
  if (e.key === 'k' || e.key === 'ArrowLeft') nav('prev');
});
"""


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def link(path: str, text: Any, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return f'<a href="{esc(path)}"{extra}>{esc(text)}</a>'


def quote_key(key: Any) -> str:
    return quote(str(key), safe="")


def row_path(table: str, key: Any) -> str:
    return f"/{table}/{quote_key(key)}"


def banner(warnings: Iterable[str]) -> str:
    """A visible warning above the page (shards left out or unreadable); empty when there is none."""
    items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    return f"<div class='warn' role='alert'><b>Part of the store could not be read</b><ul>{items}</ul></div>" \
        if items else ""


def page(title: str, body: str, warnings: Sequence[str] = ()) -> str:
    nav = " ".join(link(f"/{t}", t) for t in VIEWS) + link("/search", "search")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)} - crucible view</title>"
            f"<style>{CSS}</style></head><body><header>{link('/', 'crucible')} {nav}</header>"
            f"<main>{banner(warnings)}<h2>{esc(title)}</h2>{body}</main><script>{KEYS_JS}</script></body></html>")


def error_page(status: int, reason: str, message: str, warnings: Sequence[str] = ()) -> str:
    return page(f"{status} {reason}", f"<p class='err'>{esc(message)}</p>", warnings)


def cell(v: Any, limit: int = 90) -> str:
    if isinstance(v, float):
        v = round(v, 3)
    s = "" if v is None else (json.dumps(v) if isinstance(v, list | dict) else str(v))
    return esc(s if len(s) <= limit else s[: limit - 1] + "…")


def pager(prev: str | None, nxt: str | None, note: str) -> str:
    parts = ['<p class="pager">']
    if prev is not None:
        parts.append(link(prev, "← previous", data_key="prev"))
    if nxt is not None:
        parts.append(link(nxt, "next →", data_key="next"))
    parts.append(f"<span class='k'>{esc(note)}</span></p>")
    return "".join(parts)


def fields(row: Mapping, names: Sequence[str]) -> str:
    return "<dl>" + "".join(f"<dt>{esc(n)}</dt><dd>{cell(row.get(n), 400)}</dd>" for n in names if n in row) + "</dl>"


def fold(text: str, max_lines: int = OBSERVATION_LINES) -> str:
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


def _message(i: int, m: Mapping) -> str:
    role = m.get("role", "?")
    parts = [f'<div class="msg {esc(role)}" id="step-{i}"><span class="k">{link(f"#step-{i}", f"#{i}")} '
             f'{esc(role)}{" · " + esc(m.get("name")) if m.get("name") else ""}</span>']
    if m.get("reasoning_content"):
        parts.append(f"<details><summary>thinking</summary><pre>{esc(m['reasoning_content'])}</pre></details>")
    if m.get("content"):
        parts.append(fold(m["content"]) if role == "tool" else f"<pre>{esc(m['content'])}</pre>")
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or {}
        parts.append(f"<div>→ <b>{esc(fn.get('name'))}</b><pre>{esc(_args(fn.get('arguments')))}</pre></div>")
    parts.append("</div>")
    return "".join(parts)


def conversation(messages: Sequence[Mapping]) -> str:
    """A trajectory as a conversation; each step has an anchor (#step-N) for deep links."""
    return "".join(_message(i, m) for i, m in enumerate(messages or []))


def diff_html(text: str | None) -> str:
    lines = []
    for ln in (text or "").splitlines():
        cls = ("add" if ln.startswith("+") and not ln.startswith("+++") else
               "del" if ln.startswith("-") and not ln.startswith("---") else "hunk" if ln.startswith("@@") else "")
        lines.append(f'<span class="{cls}">{esc(ln)}</span>' if cls else esc(ln))
    return "<pre class='diff'>" + "\n".join(lines) + "</pre>"


def evidence_list(evidence: Iterable[Mapping]) -> str:
    return "".join(f"<li>{esc(e.get('fact'))} <span class='k'>{esc(e.get('url'))}</span></li>" for e in evidence)
