"""A small store for the viewer's hostile tests and fuzzing, raw HTTP over a socket, and hypothesis
strategies drawn from the viewer's OpenAPI document (valid and invalid requests, with what each must get).

Used by ``tests/unit/test_hostile_viewer.py`` and ``benchmarks/bench_view_fuzz.py``.
"""

from __future__ import annotations

import html
import re
import shutil
import socket
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow.parquet as pq
from hypothesis import strategies as st

from crucible.pipelines.store.catalog import refresh_catalog
from crucible.pipelines.store.commit import ensure_layout, stable_hash, write_commit
from crucible.pipelines.store.records import record_type
from tests.support import samples

N = 12
BIG = 7  # t0007's page is large
LIKE_QUESTIONS = {3: "Which share, 50% of all, is used?", 4: "What is snake_case_name for x?",
                  5: "Path C:\\temp holds which file?"}


def _trajectory(i: int) -> dict:
    t = samples.browse_trajectory(i)
    t["drop_reasons"] = [["rl: pass rate 1.00 not in (0, 1)"], ["sft: leak of the answer"], []][i % 3]
    if i == BIG:  # a long tool observation: an 8 MB page, more than a socket takes in one send
        t["messages"][3]["content"] = "".join(f"line {n}: {'x' * 70}\n" for n in range(100_000))
    return t


def _question(i: int) -> dict:
    q = samples.question(i)
    q["question"] = LIKE_QUESTIONS.get(i, q["question"])
    return q


def build_store(out: str, n: int = N) -> str:
    """Two commits of ``n`` rows of every table through the store's commit writer; questions 3-5 hold
    ``%``, ``_`` and ``\\``; trajectories drop reasons ``rl: ...`` (i % 3 == 0) and ``sft: ...`` (== 1);
    trajectory 7 a tool observation of 100,000 lines."""
    factories = {**samples.ALL, "questions": _question, "browse_trajectories": _trajectory}
    ensure_layout(out)
    half = n // 2
    for lo, hi in ((0, half), (half, n)):
        keys = [f"item{i:04d}" for i in range(lo, hi)]
        tables = {t: record_type(t).to_table([f(i) for i in range(lo, hi)]) for t, f in factories.items()}
        write_commit(out, "hostile", samples.RUN, stable_hash("hostile", keys), keys, tables)
    refresh_catalog(out)
    return out


def shard(out: str, table: str, last: bool = True) -> str:
    """The path of one committed shard of ``table`` (the last or first by name)."""
    from pathlib import Path

    files = sorted(p for p in (Path(out) / table).glob("part-*.parquet"))
    return str(files[-1] if last else files[0])


def damage_data_page(path: str, column: str = "messages.list.element.content") -> None:
    """Overwrite one column chunk's pages (footer intact: the catalog's footer check passes)."""
    md = pq.read_metadata(path).row_group(0)
    col = next(md.column(i) for i in range(md.num_columns) if md.column(i).path_in_schema == column)
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(open(path, "rb").read())
    data[start:start + col.total_compressed_size] = b"\xff" * col.total_compressed_size
    open(path, "wb").write(bytes(data))


def copy_store(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    return dst


def digest(root) -> dict[str, str]:
    """sha256 of every file under ``root`` (to show a store byte-identical after serving it)."""
    import hashlib
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ raw HTTP

@dataclass
class Raw:
    status: int | None  # None: no status line came back (a dropped connection)
    headers: dict[str, str]
    body: bytes
    head: bytes


def raw_request(port: int, data: bytes, timeout: float = 10.0, half_close: bool = True) -> Raw:
    """Send ``data`` as is, read until the server closes; parse what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered (a 503) and closed before all of it was sent: read the answer
            pass
        return read_answer(s)


def read_answer(s: socket.socket) -> Raw:
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return parse_answer(b"".join(chunks))


def parse_answer(raw: bytes) -> Raw:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return Raw(None, {}, raw, head)
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return Raw(int(parts[1]), headers, body, head)


def port(server) -> int:
    """The port a ViewServer listens on."""
    return server.httpd.server_address[1]


def text(r: Raw) -> str:
    return r.body.decode("utf-8")


def ids(r: Raw, table: str) -> list[str]:
    """Row keys linked from a list page's table."""
    return re.findall(rf'<td><a href="/{table}/([^"]+)"', text(r))


def err(r: Raw) -> str:
    """The message of an error page, unescaped."""
    m = re.search(r"<p class='err'>(.*?)</p>", text(r), re.S)
    return html.unescape(m.group(1)) if m else ""


def get(port: int, target: str, host: str | None = None, method: str = "GET", extra: str = "") -> Raw:
    host_line = f"Host: {host if host is not None else f'127.0.0.1:{port}'}\r\n" if host != "" else ""
    return raw_request(port, f"{method} {target} HTTP/1.1\r\n{host_line}{extra}\r\n".encode("latin-1"))


# ------------------------------------------------------------------ strategies from the OpenAPI document

@dataclass
class Case:
    target: str
    template: str  # the OpenAPI path it is drawn from
    valid: bool  # every parameter inside its schema: 200 or 404; else 400


def _text(max_size: int, min_size: int = 0):
    return st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size)


def _value(schema: dict):
    """(value text, valid) for a parameter's schema: mostly inside it, sometimes just outside."""
    if "enum" in schema:
        good = st.sampled_from(schema["enum"] + [""])
        bad = _text(12, 1).filter(lambda v: v not in schema["enum"])
    elif schema["type"] == "integer":
        lo, hi = schema["minimum"], schema["maximum"]
        good = st.one_of(st.integers(lo, hi).map(str), st.just(""))
        bad = st.one_of(st.integers(max_value=lo - 1).map(str), st.integers(min_value=hi + 1).map(str),
                        st.sampled_from(["1.5", "1e3", " 1", "0x10", "١", "1_0", "+1", "inf", "NaN", "--1"]),
                        _text(8, 1).filter(lambda v: not v.lstrip("-").isdigit()))
    else:
        good = _text(min(schema["maxLength"], 40))
        bad = _text(schema["maxLength"] + 30, schema["maxLength"] + 1)
    return st.integers(0, 4).flatmap(lambda n: bad.map(lambda v: (v, False)) if n == 0 else good.map(lambda v: (v, True)))


def _enc(v: str) -> str:
    return quote(v, safe="")


@st.composite
def case(draw, doc: dict, keys: dict[str, list[str]]) -> Case:
    template = draw(st.sampled_from(sorted(p for p in doc["paths"] if p != "/openapi.json")))
    op = doc["paths"][template]["get"]
    valid, path = True, template
    for p in op["parameters"]:
        if p["in"] != "path":
            continue
        table = template.split("/")[1]
        good = st.sampled_from(keys.get(table) or ["x"])
        n = draw(st.integers(0, 5))
        key = draw(good if n < 3 else _text(40, 1) if n < 5 else _text(p["schema"]["maxLength"] + 20,
                                                                         p["schema"]["maxLength"] + 1))
        valid &= len(key) <= p["schema"]["maxLength"]
        path = path.replace("{key}", _enc(key))
    pairs = []
    for p in op["parameters"]:
        if p["in"] == "query" and draw(st.booleans()):
            v, ok = draw(_value(p["schema"]))
            pairs.append((p["name"], v))
            valid &= ok
    if draw(st.integers(0, 14)) == 0:  # a parameter the route does not declare
        name = draw(_text(10, 1).filter(lambda n: n not in {p["name"] for p in op["parameters"]}))
        pairs.append((name, draw(_text(5))))
        valid = False
    if pairs and draw(st.integers(0, 14)) == 0:  # one given twice
        pairs.append(pairs[0])
        valid = False
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in draw(st.permutations(pairs)))
    return Case(path + ("?" + query if query else ""), template, valid)


def problems(doc: dict, c: Case, r: Raw) -> list[str]:
    """What in the answer ``r`` to ``c`` breaks the document or the case's expectation (empty: none)."""
    if r.status is None:
        return [f"{c.target[:120]}: no status line (dropped connection): {r.head[:80]!r}"]
    out = []
    responses = doc["paths"][c.template]["get"]["responses"]
    if str(r.status) not in responses:
        out.append(f"status {r.status} is not documented for {c.template}")
    expected = {200, 404} if c.valid else {400}
    if r.status not in expected:
        out.append(f"status {r.status}, expected {sorted(expected)}")
    if not r.body:
        out.append("an empty body")
    if r.headers.get("content-length") != str(len(r.body)):
        out.append(f"Content-Length {r.headers.get('content-length')} for a body of {len(r.body)}")
    if not r.headers.get("content-type", "").startswith("text/html"):
        out.append(f"Content-Type {r.headers.get('content-type')}")
    if b"Traceback (most recent call last)" in r.body:
        out.append("a traceback in the body")
    return [f"{c.target[:120]}: {p}" for p in out]
