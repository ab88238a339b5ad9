"""The search server checked against its description, ``openapi.json`` (issue 25, item 3): every declared
operation answers its declared shapes; a hypothesis fuzz drawn from the description (fixed seed) gets an
answer of a declared status and schema for every request, never a drop or a 5xx; the limits are the
declared ones; ``crucible search serve`` refuses bad ports in one line."""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings

from crucible.pipelines.browse.search import spec as spec_mod
from crucible.pipelines.browse.search.spec import Limits
from tests.support.search_fuzz import KEY, probes
from tests.support.search_wire import conforms, exchange, get, request, serving, small_local


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return small_local(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def srv(local):
    with serving(local) as s:
        yield s


def _conforming(path, method, reply):
    problems = conforms(path, method, reply)
    assert not problems, problems
    return reply


def test_limits_are_read_from_the_description_and_every_one_is_declared():
    lim = Limits.from_spec()
    declared = spec_mod.spec()["x-crucible-limits"]
    assert lim.max_body_bytes == declared["max_body_bytes"] and set(declared) == set(vars(lim))
    assert set(declared) == set(spec_mod.spec()["x-crucible-limits-description"])


def test_fault_injection_still_answers_with_json(srv):
    srv.fail_next[:] = [429]
    r = get(srv.port, "/health")
    assert r.status == 429 and r.headers["retry-after"] == "0" and r.json()["status"] == 429


def test_serve_refuses_a_port_out_of_range_and_a_busy_port(local, capsys, monkeypatch):
    from crucible.pipelines.browse import api
    from crucible.pipelines.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["search", "serve", "--port", "70000"])
    assert exc.value.code == 2 and "70000 is outside 0..65535" in capsys.readouterr().err
    monkeypatch.setattr(api, "make_backend", lambda cfg, progress=None: local)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["search", "serve", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "pick another with --port" in err and "Traceback" not in err


# -- the description, checked against the server ----------------------------------------------------
VALID = [("GET", "/search?q=Belgium&format=json&count=3&pageno=1", None, {}),
         ("POST", "/serper/search", {"q": "Belgium", "num": 3, "page": 1}, {"X-API-KEY": KEY}),
         ("GET", "/brave/res/v1/web/search?q=Belgium&count=3&offset=0", None, {"X-Subscription-Token": KEY}),
         ("POST", "/tavily/search", {"query": "Belgium", "max_results": 3}, {"Authorization": f"Bearer {KEY}"}),
         ("POST", "/retrieve", {"queries": ["Belgium", "Iceland"], "topk": 2, "return_scores": True}, {}),
         ("POST", "/retrieve", {"queries": ["Belgium"]}, {}),
         ("GET", "/page?url=https://kb.local/country/BE", None, {}), ("GET", "/health", None, {}),
         ("GET", "/", None, {})]


@pytest.mark.parametrize("method,target,body,headers", VALID)
def test_every_declared_operation_answers_its_declared_200_shape(srv, method, target, body, headers):
    data = request(method, target, None if body is None else json.dumps(body).encode(), headers)
    r = _conforming(target.split("?")[0], method, exchange(srv.port, data))
    assert r.status == 200


@pytest.mark.parametrize("method,target,body,headers", [v for v in VALID if v[3]])
def test_every_keyed_operation_answers_its_declared_401_shape(srv, method, target, body, headers):
    data = request(method, target, None if body is None else json.dumps(body).encode())
    assert _conforming(target.split("?")[0], method, exchange(srv.port, data)).status == 401


@pytest.fixture(scope="module")
def fuzz_srv(local):
    with serving(local, read_timeout_s=0.2, request_deadline_s=0.5) as s:
        yield s


@settings(max_examples=250, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(probe=probes())
def test_fuzz_every_answer_conforms_to_the_description(fuzz_srv, probe):
    r = exchange(fuzz_srv.port, probe.data, half_close=probe.half_close)
    assert r.status is not None, f"dropped: {r.error}"
    assert r.status < 500, r.body[:300]
    if probe.kind != "garbage_line":
        assert not conforms(probe.path, probe.method, r), conforms(probe.path, probe.method, r)
    if probe.valid:  # a request the description allows is served (a page may be missing from the corpus)
        assert r.status == 200 or (probe.path == "/page" and r.status == 404), r.body[:300]
