"""Hypothesis strategies for hostile requests to the search server, drawn from ``openapi.json``.

A drawn :class:`Probe` is one request's bytes plus what the description promises for it: ``valid``
(every declared parameter in range, good framing, a loopback Host, a key where one is needed) must be
answered 200; anything else must be answered with a status the operation declares (or 404/405 for an
undeclared path or method) and a body of the declared schema: never a dropped connection, never a 5xx.
Used by the unit suite (a short run) and ``benchmarks/bench_search_fuzz.py`` (five minutes).
"""

from __future__ import annotations

import json
import urllib.parse

from hypothesis import strategies as st

from crucible.pipelines.browse.search.spec import operations

KEY = "fuzz-key"
AUTH = {"serper": {"X-API-KEY": KEY}, "brave": {"X-Subscription-Token": KEY},
        "tavily": {"Authorization": f"Bearer {KEY}"}}
BAD_LENGTHS = ["abc", "-1", "+5", " 1e3", "0x10", "99999999999999999999", "5, 5", ""]
HOSTS_OK = ["127.0.0.1", "localhost", "[::1]:1", "LOCALHOST:80"]
HOSTS_BAD = ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:80", "0.0.0.0", "[::2]"]
JUNK_PATHS = ["/nope", "/search/", "/serper", "/retrieve/../search", "*", "/%ff", "/page%00"]
METHODS_ODD = ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO", "GET", "POST"]


class Probe:
    """One request's bytes and what the description promises for it (a plain class: hypothesis prints
    its ``repr`` for a failing example, cut short)."""

    def __init__(self, method: str, path: str, data: bytes, valid: bool, half_close: bool = False,
                 slow: bool = False, kind: str = ""):
        self.method, self.path, self.data, self.valid = method, path, data, valid
        self.half_close = half_close
        self.slow = slow  # the server must wait for its read timeout (Content-Length longer than the body)
        self.kind = kind

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Probe({self.kind}, valid={self.valid}, {self.data[:300]!r}{'...' if len(self.data) > 300 else ''})"


_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff"])
_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                       st.text(max_size=30), _SURROGATES)
_JSON_ANY = st.recursive(_JSON_LEAF, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                           max_size=4), max_leaves=12)


def valid_value(schema: dict) -> st.SearchStrategy:
    t = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if t == "integer":
        return st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31))
    if t == "boolean":
        return st.booleans()
    if t == "array":
        return st.lists(valid_value(schema["items"]), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 5), 5))
    text = st.text(st.characters(exclude_categories=("Cs",)), min_size=schema.get("minLength", 0), max_size=40)
    if schema.get("maxLength", 0) >= 2048:
        text = text | st.just("é" * schema["maxLength"])  # the longest allowed, in two-byte characters
    return text


def hostile_value(schema: dict) -> st.SearchStrategy:
    lo, hi = schema.get("minimum", 0), schema.get("maximum", 0)
    edges = st.sampled_from([lo - 1, hi + 1, 0, -1, 2**63, -(2**63) - 1, 10**30, 1e300, -1e300, 3.5, "3", True])
    longest = schema.get("maxLength", schema.get("maxItems", 8))
    too_long = st.just("x" * (longest + 1)) if schema.get("type") == "string" else st.just(["q"] * (longest + 1))
    return st.one_of(edges, _JSON_ANY, too_long)


@st.composite
def _params(draw, schema: dict) -> tuple[dict, bool]:
    obj, ok = {}, True
    for name, prop in schema.get("properties", {}).items():
        choice = draw(st.sampled_from(["omit", "valid", "valid", "valid", "hostile"]))
        if choice == "omit" and name not in schema.get("required", []):
            continue
        if choice == "hostile":
            obj[name] = draw(hostile_value(prop))
            ok = False
        else:
            obj[name] = draw(valid_value(prop))
    return obj, ok


def _query_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, allow_nan=True) if isinstance(value, (list, dict, float)) else str(value)


@st.composite
def _framed(draw, method: str, target: str, headers: dict, body: bytes | None) -> tuple[bytes, bool, bool, bool]:
    """(bytes, framing ok, half close, slow) with the framing perhaps broken."""
    lines = [f"{method} {target} HTTP/1.1"]
    host = draw(st.sampled_from(["ok"] * 8 + ["bad", "none", "two"]))
    ok = host == "ok"
    if host in ("ok", "two"):
        lines.append(f"Host: {draw(st.sampled_from(HOSTS_OK))}")
    if host in ("bad", "two"):
        lines.append(f"Host: {draw(st.sampled_from(HOSTS_BAD))}")
    lines += [f"{k}: {v}" for k, v in headers.items()] + ["Connection: close"]
    frame = draw(st.sampled_from(["exact"] * 12 + ["none", "bad", "two", "chunked", "short", "slow", "huge"]))
    body = body or b""
    half, slow = False, False
    if frame == "exact" and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    elif frame == "bad":
        lines.append(f"Content-Length: {draw(st.sampled_from(BAD_LENGTHS))}")
    elif frame == "two":
        lines += [f"Content-Length: {len(body)}", f"Content-Length: {len(body) + 1}"]
    elif frame == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    elif frame in ("short", "slow"):
        lines.append(f"Content-Length: {len(body) + draw(st.integers(1, 100))}")
        half, slow = frame == "short", frame == "slow"
    elif frame == "huge":
        lines.append(f"Content-Length: {draw(st.integers(65537, 10**12))}")
    if draw(st.integers(0, 19)) == 0:  # junk headers: many, or one long
        lines += [f"X-J{i}: {'v' * draw(st.sampled_from([1, 700]))}" for i in range(draw(st.integers(1, 120)))]
        ok = False
    ok = ok and (frame == "exact" or (frame == "none" and method == "GET"))
    if frame == "none" and method == "GET":
        body = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body, ok, half, slow


@st.composite
def probes(draw) -> Probe:
    ops = list(operations().values())
    kind = draw(st.sampled_from(["op"] * 10 + ["junk_path", "odd_method", "garbage_line"]))
    if kind == "garbage_line":
        data = draw(st.sampled_from([b"GET /\r\n\r\n", b"\r\n\r\n", b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n",
                                     b"GET / HTTP/1.1 extra\r\n\r\n", b"G\x00T / HTTP/1.1\r\n\r\n",
                                     b"GET /health HTTP/x.y\r\nHost: localhost\r\n\r\n"])) + draw(st.binary(max_size=40))
        return Probe("GET", "", data, False, half_close=True, kind=kind)
    op = draw(st.sampled_from(ops))
    method, path = op.method, op.path
    if kind == "junk_path":
        path = draw(st.sampled_from(JUNK_PATHS) | st.text(max_size=30).map(lambda t: "/" + urllib.parse.quote(t)))
    elif kind == "odd_method":
        method = draw(st.sampled_from(METHODS_ODD))
    params, ok = draw(_params(op.schema))
    headers = dict(AUTH.get(op.operation_id, {})) if draw(st.integers(0, 9)) else {}
    ok = ok and (bool(headers) or op.operation_id not in AUTH) and kind == "op"
    target, body = path, None
    if op.source == "query":
        pairs = [(k, _query_text(v)) for k, v in params.items()]
        query = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, errors="surrogatepass")
        if draw(st.integers(0, 9)) == 0:
            query += draw(st.sampled_from(["&%ff%fe=1", "&q=again", "&" + "&".join(["a=1"] * 40), "&%zz", "&&=x"]))
            ok = False
        target = f"{path}?{query}" if query else path
    elif op.source == "body":
        body_kind = draw(st.sampled_from(["json"] * 8 + ["bytes", "not_object", "deep", "bad_utf8", "cut"]))
        body = json.dumps(params, allow_nan=True).encode() if body_kind in ("json", "cut") else b""
        if body_kind == "bytes":
            body = draw(st.binary(max_size=200))
        elif body_kind == "not_object":
            body = json.dumps(draw(_JSON_ANY.filter(lambda v: not isinstance(v, dict))), allow_nan=True).encode()
        elif body_kind == "deep":
            body = b'{"queries": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        elif body_kind == "bad_utf8":
            body = body.replace(b'"', b'"\xff', 1)
        elif body_kind == "cut":
            body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
        ok = ok and body_kind == "json" and "NaN" not in body.decode() and "Infinity" not in body.decode()
    data, framing_ok, half, slow = draw(_framed(method, target, headers, body))
    return Probe(method, path, data, ok and framing_ok, half, slow, kind)
