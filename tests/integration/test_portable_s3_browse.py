"""#27 acceptance, synth-browse: a small config (6 questions, k=2, the scripted fake LLM server of
tests/support/fake_llm_server.py, the embedded graph and search index) on Beam's PortableRunner with an EXTERNAL pool of 2 SDK
harnesses, writing to ``s3://`` on moto's loopback server, gives the rows of the single-process local run
(timestamps, run ids, measured latencies and the search cache's hit/miss split aside). The driver and the workers see the server through ``run.beam_args``' ``--s3_*``
flags only (no ``AWS_*`` environment): ``run()`` sets FileSystems from them before its first store call."""

from __future__ import annotations

import json
import time

import pytest

from pipelines.browse.pipeline import run
from pipelines.config import load_config
from tests.support import s3server
from tests.support.fake_browse import responder
from tests.support.fake_llm_server import FakeOpenAIServer
from tests.support.portable import REPO, portable_services
from tests.support.portable_s3 import (
    BROWSE_TABLES,
    VOLATILE,
    differing_columns,
    keys,
    rows,
    s3_flags,
    search_cache_blind,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
s3_endpoint, s3_store = s3server.s3_endpoint, s3server.s3_store
AWS_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def llm():
    with FakeOpenAIServer(responder=responder) as srv:
        yield srv


def _cfg(out: str, srv, *extra: str):
    return load_config("browse", [
        f"run.out_dir={out}", "run.run_id=portable-browse", "llm.engine=openai", f"llm.base_urls=[{srv.base_url}]",
        "llm.model=fake-model", "browse.seeds=6", "browse.k=2", "run.progress_every_s=0", "browse.policy=json_step",
        *extra])


BROWSE_VOLATILE = (*VOLATILE, "latency_s")


def _rows(out: str) -> dict:
    return rows(out, BROWSE_TABLES, BROWSE_VOLATILE, search_cache_blind)


def _flags_only(monkeypatch) -> None:
    for k in AWS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    s3server.reset_filesystems()


def test_two_external_workers_into_s3_give_the_local_rows(tmp_path, llm, s3_store, s3_endpoint, monkeypatch):
    srv = llm
    t0 = time.monotonic()
    local = run(_cfg(str(tmp_path / "local"), srv))
    print(f"\nlocal single-process run: {time.monotonic() - t0:.1f} s, {local['processed']} processed")
    want = _rows(str(tmp_path / "local"))
    assert local["processed"] == 6 and want["questions"]
    _flags_only(monkeypatch)
    with portable_services(tmp_path, boot_dir=tmp_path) as svc:
        args = [a for a in svc.beam_args(2) if not a.startswith("--runner")] + s3_flags(s3_endpoint)
        t0 = time.monotonic()
        got = run(_cfg(s3_store, srv, "run.runner=PortableRunner", f"run.beam_args={json.dumps(args)}"))
        print(f"portable, 2 external workers, into s3://: {time.monotonic() - t0:.1f} s, "
              f"{got['processed']} processed, {len(want['questions'])} questions, "
              f"{len(want['browse_trajectories'])} trajectories, {len(want['failures'])} failures")
        assert len(svc.workers) >= 2, (tmp_path / "pool.log").read_text()[-2000:]
    assert got["processed"] == local["processed"] and got["planned"] == local["planned"]
    got_rows = _rows(s3_store)
    for t in BROWSE_TABLES:
        assert got_rows[t] == want[t], differing_columns(s3_store, str(tmp_path / "local"), t, BROWSE_VOLATILE)
    for table, key in (("questions", "question_id"), ("browse_trajectories", "traj_id")):
        assert max(keys(s3_store, table, key).values()) == 1
