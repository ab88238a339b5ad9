"""`crucible view` against a careless or hostile client (issue 25, item 3), the request side: declared
parameter types and ranges, ``?reason=``, LIKE wildcards, store errors as pages with a banner, nothing
written, the OpenAPI contract (and a seeded hypothesis fuzz against it). The real server on 127.0.0.1
port 0 over a real small store (two commits through the store's commit writer). Each defense has a test
where it must refuse and a test with it switched off showing what gets through without it. The HTTP side
(Host header, malformed requests, slow clients, caps, ``--port``) is in ``test_hostile_viewer_http.py``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from crucible.pipelines.view import openapi, params, queries
from crucible.pipelines.view import server as S
from crucible.pipelines.view.server import ViewServer
from tests.support import view_fuzz as F
from tests.support.view_fuzz import digest, err, ids, port, text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "store"
    F.build_store(str(out))
    return out


@pytest.fixture(scope="module")
def before(store):
    return digest(store)


@pytest.fixture(scope="module")
def srv(store, before):
    with ViewServer(str(store), port=0) as s:
        yield s


def get(s: ViewServer, target: str, **kw) -> F.Raw:
    return F.get(port(s), target, **kw)


# ------------------------------------------------------------------ ?reason= (DuckDB 2.0 refused the lambda)

def test_reason_filter_answers_on_this_duckdb(srv):
    r = get(srv, "/browse_trajectories?reason=rl")
    assert r.status == 200, err(r)
    assert ids(r, "browse_trajectories") == ["t0000", "t0003", "t0006", "t0009"]
    assert ids(get(srv, "/browse_trajectories?reason=sft%3A%20leak"), "browse_trajectories") == [
        "t0001", "t0004", "t0007", "t0010"]
    assert ids(get(srv, "/browse_trajectories?reason=%25"), "browse_trajectories") == []  # a prefix, not a pattern


def test_reason_filter_switched_off_to_the_old_arrow_lambda_fails_every_request(srv, monkeypatch):
    monkeypatch.setattr(queries, "REASON_SQL", "len(list_filter(drop_reasons, r -> starts_with(r, ?))) > 0")
    r = get(srv, "/browse_trajectories?reason=rl")
    if queries._lambda_syntax():  # DuckDB >= 1.3: the arrow is deprecated (2.0 refuses it)
        assert r.status == 500 and "lambda" in err(r).lower()
    else:
        assert r.status == 200


def test_reason_is_not_a_parameter_of_a_table_without_drop_reasons(srv):
    r = get(srv, "/questions?reason=x")
    assert r.status == 400 and "unknown parameter 'reason'" in err(r)


# ------------------------------------------------------------------ declared types and ranges

@pytest.mark.parametrize("offset", ["99999999999999999999", str(2**63), "-1", "1e3", "abc", "1.5", " 1", "١",
                                    "10000001"])
def test_offset_outside_its_range_is_a_400_naming_it(srv, offset):
    r = F.get(port(srv), "/questions?offset=" + quote(offset))
    assert r.status == 400
    assert "offset must be an integer from 0 to 10000000" in err(r)


def test_offset_at_the_cap_is_an_empty_page(srv):
    r = get(srv, "/questions?offset=10000000")
    assert r.status == 200 and ids(r, "questions") == [] and "rows 0–10000000 of 12" in text(r)


def test_offset_check_switched_off_lets_duckdb_see_the_raw_number(srv, monkeypatch):
    monkeypatch.setattr(params.Param, "parse", lambda self, raw: raw)
    r = get(srv, "/questions?offset=99999999999999999999")
    assert r.status == 400 and "Conversion Error" in err(r)  # DuckDB's own words: the value reached the SQL


def test_unknown_parameter_is_a_400_listing_the_known_ones(srv):
    r = get(srv, "/browse_trajectories?verdcit=correct")
    assert r.status == 400
    assert "unknown parameter 'verdcit'" in err(r) and "verdict" in err(r)


def test_unknown_parameter_switched_off_shows_every_row_for_a_typo(srv, monkeypatch):
    old = params.validate
    monkeypatch.setattr(params, "validate", lambda ps, q, where: old(
        ps, {k: v for k, v in q.items() if k in {p.name for p in ps}}, where))
    r = get(srv, "/browse_trajectories?verdcit=correct")
    assert r.status == 200 and len(ids(r, "browse_trajectories")) == 12


def test_a_parameter_given_twice_is_a_400(srv):
    r = get(srv, "/questions?split=rl&split=sft")
    assert r.status == 400 and "given twice" in err(r)


@pytest.mark.parametrize("target, msg", [
    ("/questions?hops=abc", "hops must be an integer"),
    ("/questions?hops=%D9%A3", "hops must be an integer"),  # an Arabic-Indic digit, which int() takes
    ("/swe_trajectories?resolved=yes", "resolved must be one of true, false"),
    ("/questions?sort=lineage", "sort must be one of"),  # a list of structs: not sortable
    ("/browse_trajectories?sort=traj_id%3Bdrop", "sort must be one of"),
    ("/questions?desc=2", "desc must be one of 0, 1"),
])
def test_typed_filters_refuse_values_of_the_wrong_type(srv, target, msg):
    r = get(srv, target)
    assert r.status == 400 and msg in err(r)


def test_typed_filters_take_values_of_their_type(srv):
    assert ids(get(srv, "/questions?hops=3"), "questions") == ["q0001", "q0004", "q0007", "q0010"]
    r = get(srv, "/swe_trajectories?resolved=true")
    assert r.status == 200 and len(ids(r, "swe_trajectories")) == 12
    assert get(srv, "/questions?hops=&split=").status == 200  # the form's "any": empty means absent


@pytest.mark.parametrize("target, msg", [
    ("/search?q=" + "x" * 201, "q is 201 characters; at most 200"),
    ("/questions?split=" + "x" * 501, "split is 501 characters; at most 500"),
    ("/browse_trajectories?reason=" + "r" * 201, "reason is 201 characters; at most 200"),
    ("/questions/" + "k" * 501, "a row key is at most 500 characters"),
    ("/questions?" + "&".join(f"p{i}=1" for i in range(40)), "more than 32 query parameters"),
])
def test_text_sizes_and_counts_are_capped(srv, target, msg):
    r = get(srv, target)
    assert r.status == 400 and msg in err(r)


@pytest.mark.parametrize("target", ["/search?q=%ff%fe", "/questions/%c3%28", "/questions?split=%80"])
def test_percent_escapes_that_are_not_utf8_are_a_400(srv, target):
    r = get(srv, target)
    assert r.status == 400 and "not UTF-8" in err(r)


def test_raw_bytes_outside_ascii_in_the_target_are_a_400(srv):
    r = F.raw_request(port(srv), b"GET /search?q=\xc3\xa9 HTTP/1.0\r\n\r\n")
    assert r.status == 400 and "printable ASCII" in err(r)


def test_odd_keys_are_a_404_not_an_error(srv):
    for key in ["%2F..%2F..%2Fetc%2Fpasswd", "%00", "q0001%27%20OR%20%271%27%3D%271", "%E2%80%A8"]:
        r = get(srv, "/questions/" + key)
        assert r.status == 404 and r.body, key
    assert get(srv, "/questions/q0001/compare/more").status == 404
    assert get(srv, "/no_such_table").status == 404


# ------------------------------------------------------------------ LIKE wildcards

@pytest.mark.parametrize("q, want", [("%25", ["q0003"]), ("_", ["q0004"]), ("e_c", ["q0004"]), ("%5C", ["q0005"]),
                                     ("50%25%20OF", ["q0003"]), ("currency%2011", ["q0011"])])
def test_search_matches_wildcards_literally(srv, q, want):
    r = get(srv, "/search?q=" + q)
    assert r.status == 200
    assert re.findall(r'<li><a href="/questions/(q\d+)"', text(r)) == want


def test_search_with_escaping_switched_off_matches_every_row(srv, monkeypatch):
    monkeypatch.setattr(queries, "like_pattern", lambda t: f"%{t}%")
    r = get(srv, "/search?q=_")
    assert "questions (12)" in text(r)


def test_search_text_is_escaped_in_the_page(srv):
    r = get(srv, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.status == 200 and "<script>alert" not in text(r) and "&lt;script&gt;alert(1)" in text(r)


# ------------------------------------------------------------------ store errors become pages

@pytest.fixture(scope="module")
def damaged(store, tmp_path_factory):
    out = F.copy_store(str(store), str(tmp_path_factory.mktemp("damaged") / "store"))
    F.damage_data_page(F.shard(out, "browse_trajectories"))
    with ViewServer(out, port=0) as s:
        yield s


def _in_damaged_shard(s) -> str:
    import pyarrow.parquet as pq

    return pq.read_table(F.shard(s.store.out_dir, "browse_trajectories"), columns=["traj_id"]).column(0)[0].as_py()


def test_a_bad_data_page_is_a_500_naming_the_shard_then_a_banner_everywhere(damaged):
    bad = _in_damaged_shard(damaged)
    r = get(damaged, f"/browse_trajectories/{bad}")
    assert r.status == 500
    assert "crucible store check" in err(r) and "--quarantine" in err(r)
    name = Path(F.shard(damaged.store.out_dir, "browse_trajectories")).name
    for target in ("/", "/questions", "/search?q=x", "/nope"):
        page = text(get(damaged, target))
        assert "role='alert'" in page and name in page, target


def test_store_errors_switched_off_drop_the_connection_without_an_answer(damaged, monkeypatch):
    monkeypatch.setattr(S, "CAUGHT", ())
    r = get(damaged, f"/browse_trajectories/{_in_damaged_shard(damaged)}")
    assert r.status is None and r.body == b""


def test_a_page_that_fails_to_render_is_a_500_with_a_body(srv, monkeypatch):
    def broken(cur):
        raise KeyError("verdict")

    monkeypatch.setattr(S.P, "index_page", broken)
    r = get(srv, "/")
    assert r.status == 500 and "KeyError" in err(r) and "Traceback" not in text(r)


@pytest.fixture(scope="module")
def truncated(store, tmp_path_factory):
    out = F.copy_store(str(store), str(tmp_path_factory.mktemp("truncated") / "store"))
    path = F.shard(out, "questions")
    os.truncate(path, os.path.getsize(path) - 20)
    before = digest(Path(out))  # the catalog file and the card now list a shard that is not readable
    with ViewServer(out, port=0) as s:
        s.before = before
        yield s, Path(path).name


def test_a_shard_left_out_is_named_in_a_banner_on_every_page(truncated):
    s, name = truncated
    r = get(s, "/questions")
    assert r.status == 200 and len(ids(r, "questions")) == 6
    assert "role='alert'" in text(r) and name in text(r) and "crucible store check" in text(r)
    assert name in text(get(s, "/swe_instances"))


def test_banner_switched_off_shows_fewer_rows_without_a_word(truncated, monkeypatch):
    s, name = truncated
    monkeypatch.setattr(S.Store, "warnings", lambda self: [])
    r = get(s, "/questions")
    assert len(ids(r, "questions")) == 6 and name not in text(r) and "role='alert'" not in text(r)


def test_serving_a_damaged_store_rewrites_nothing_in_it(truncated):
    s, _ = truncated
    kept = ids(get(s, "/questions"), "questions")[0]
    for target in ("/", "/questions", f"/questions/{kept}", "/search?q=a"):
        assert get(s, target).status == 200, target
    assert digest(Path(s.store.out_dir)) == s.before  # no catalog repair, no card rewrite


def test_the_viewers_connection_opens_no_file_outside_the_store(srv):
    import duckdb

    with pytest.raises(duckdb.Error):
        srv.con.execute("SELECT * FROM read_text('/etc/hostname')").fetchall()


# ------------------------------------------------------------------ the OpenAPI description

def test_openapi_is_served_and_the_docs_copy_is_current(srv):
    r = get(srv, "/openapi.json")
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    doc = json.loads(r.body)
    assert doc == openapi.document()
    assert json.loads((REPO / "docs" / "view.openapi.json").read_text()) == doc, \
        "run: python -m crucible.pipelines.view.openapi > docs/view.openapi.json"
    assert doc["openapi"].startswith("3.")


def test_every_documented_route_answers_200_with_a_known_key(srv):
    doc = openapi.document()
    keys = {"questions": "q0001", "browse_trajectories": "t0001", "swe_instances": "demo__repo-1",
            "swe_validations": "demo__repo-1", "swe_trajectories": "st0001", "sandbox_surveys": "sv1",
            "swe_grades": "g0001", "failures": "f0001"}
    for path in doc["paths"]:
        table = path.split("/")[1]
        r = get(srv, path.replace("{key}", keys.get(table, "")))
        assert r.status == 200, (path, err(r))


@pytest.fixture(scope="module")
def known_keys():
    return {"questions": ["q0001", "q0003"], "browse_trajectories": ["t0002"], "swe_instances": ["demo__repo-1"],
            "failures": ["f0001"]}


@seed(25)
@settings(max_examples=150, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_requests_from_the_openapi_document_get_what_it_says(srv, known_keys, data):
    doc = openapi.document()
    c = data.draw(F.case(doc, known_keys))
    r = get(srv, c.target)
    assert F.problems(doc, c, r) == []


# ------------------------------------------------------------------ nothing written

def test_the_store_is_byte_identical_after_all_of_the_above(store, before, srv):
    get(srv, "/")
    assert digest(store) == before
