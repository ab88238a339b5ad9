"""Raw-socket HTTP for probing the search server, its description's check of an answer, and a fake backend.

``exchange`` sends bytes exactly as given (malformed requests included) and reads one answer by its
``Content-Length``: ``Reply.status`` is None when the connection closed without a status line (a drop).
``conforms`` checks an answer against ``openapi.json``: a status the operation declares and a body that
validates against the declared schema of that status.
"""

from __future__ import annotations

import json
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from crucible.pipelines.browse.search.backends import BackendError
from crucible.pipelines.browse.search.spec import Limits, spec

_URN = "urn:crucible-search-openapi"
FAST = {"read_timeout_s": 0.3, "request_deadline_s": 1.5}  # slow clients answered in well under a second


@contextmanager
def serving(backend, api_key=None, **limits):
    """A started server on 127.0.0.1 port 0 with the declared limits, ``FAST`` timeouts and ``limits``
    overriding them (None switches a defense off)."""
    from crucible.pipelines.browse.search.server import SearchServer

    with SearchServer(backend, api_key=api_key, limits=replace(Limits.from_spec(), **{**FAST, **limits})) as srv:
        yield srv


def small_local(directory):
    """A :class:`LocalBackend` over the small test graph's corpus, built in ``directory``."""
    from crucible.pipelines.browse.api import build_corpus
    from crucible.pipelines.browse.corpus import render_pages
    from crucible.pipelines.browse.search.backends import LocalBackend
    from tests.unit.browse_helpers import small_graph

    build_corpus(render_pages(small_graph()), directory)
    return LocalBackend(directory)


@dataclass
class Reply:
    status: int | None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    error: str = ""  # why no (whole) answer came: "closed", "timeout", a socket error

    def json(self):
        return json.loads(self.body)

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def read_reply(sock: socket.socket) -> Reply:
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return Reply(None, error="closed" if not buf else f"closed after {buf[:80]!r}")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                return Reply(status, headers, body, "body cut short")
            body += chunk
        return Reply(status, headers, body[:n])
    except TimeoutError:
        return Reply(None, error="timeout")
    except OSError as exc:
        return Reply(None, error=type(exc).__name__)


def exchange(port: int, data: bytes, half_close: bool = False, timeout: float = 10.0) -> Reply:
    """One request on a new connection; ``half_close``: shut the sending side after it (EOF for the server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (413, 414) and close before all was sent: read what it said
        return read_reply(s)


def request(method: str, target: str, body: bytes | None = None, headers: dict | None = None,
            host: str | None = "127.0.0.1") -> bytes:
    """A well-formed request's bytes (``Connection: close``, ``Content-Length`` when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.append("Connection: close")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def post_json(port: int, path: str, obj, headers: dict | None = None) -> Reply:
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return exchange(port, request("POST", path, body, {"Content-Type": "application/json", **(headers or {})}))


def get(port: int, target: str, headers: dict | None = None, host: str | None = "127.0.0.1") -> Reply:
    return exchange(port, request("GET", target, None, headers, host))


# -- the description's check -------------------------------------------------------------------
def _registry() -> Registry:
    return Registry().with_resource(_URN, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(obj: dict, pointer: str) -> tuple[dict, str]:
    while "$ref" in obj:
        pointer = obj["$ref"][1:]
        obj = spec()
        for part in pointer.strip("/").split("/"):
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj, pointer


def schema_errors(pointer: str, instance) -> list[str]:
    v = Draft202012Validator({"$ref": f"{_URN}#{pointer}"}, registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in v.iter_errors(instance)]


ERROR_SCHEMA = _pointer("components", "schemas", "Error")


def conforms(path: str, method: str, reply: Reply) -> list[str]:
    """What in ``reply`` breaks the description of ``method path`` (empty: it conforms)."""
    if reply.status is None:
        return [f"no answer ({reply.error})"]
    ops = spec()["paths"].get(path, {})
    op = ops.get(method.lower())
    if op is None:  # undeclared path or method: 404 or 405 (with Allow), or a protocol error, as an Error body
        if reply.status == 405 and "allow" not in reply.headers:
            return ["405 without an Allow header"]
        return _json_errors(ERROR_SCHEMA, reply, method)
    responses = op["responses"]
    if str(reply.status) not in responses:
        return [f"status {reply.status} is not declared for {method} {path} ({sorted(responses)})"]
    resp, ptr = _resolve(responses[str(reply.status)], _pointer("paths", path, method.lower(), "responses",
                                                                 str(reply.status)))
    ctype = reply.headers.get("content-type", "").split(";")[0].strip()
    if ctype not in resp.get("content", {}):
        return [f"content type {ctype!r} is not declared for {reply.status} ({sorted(resp.get('content', {}))})"]
    if ctype != "application/json":
        return []
    return _json_errors(ptr + _pointer("content", ctype, "schema"), reply, method)


def _json_errors(pointer: str, reply: Reply, method: str) -> list[str]:
    if method == "HEAD":
        return []
    try:
        body = reply.json()
    except ValueError:
        return [f"body is not JSON: {reply.body[:120]!r}"]
    return schema_errors(pointer, body)


# -- a backend that records what it was asked --------------------------------------------------
class RecordingBackend:
    """``search`` returns ``min(k, most)`` made-up results of ``snippet_chars`` and records every ``k``;
    ``fail`` makes it raise that exception instead."""

    name = "recording"
    snapshot_id = "recording-1"

    def __init__(self, most: int = 10**9, snippet_chars: int = 40, fail: BaseException | None = None):
        self.most, self.snippet_chars, self.fail = most, snippet_chars, fail
        self.asked: list[int] = []
        self.calls = 0

    def search(self, query: str, top_k: int) -> list[dict]:
        self.calls += 1
        self.asked.append(top_k)
        if self.fail is not None:
            raise self.fail
        return [{"title": f"r{i}", "url": f"https://kb.local/r{i}", "snippet": "s" * self.snippet_chars}
                for i in range(min(top_k, self.most))]

    def fetch(self, url: str) -> dict:
        raise BackendError(f"no page {url}")
