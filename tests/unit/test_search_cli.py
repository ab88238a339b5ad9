"""`crucible search index|query|visit|serve|export` end to end on a tiny pages JSONL."""

import json
import os
import subprocess
import sys

from crucible.pipelines.browse.search.backends import FrozenBackend
from crucible.pipelines.browse.search.live import HttpClient, SearxngBackend
from crucible.pipelines.cli import main

PAGES = [
    {"url": "https://example.org/a", "title": "Alpha Lake", "text": "Alpha Lake lies at 1,200 m in the Zeta range."},
    {"url": "https://example.org/b", "title": "Beta River", "text": "Beta River flows from Alpha Lake to the sea."},
]


def _sets(tmp_path):
    f = tmp_path / "pages.jsonl"
    f.write_text("\n".join(json.dumps(p) for p in PAGES) + "\n")
    return ["--set", f"search.local.pages={f}", "--set", f"search.local.dir={tmp_path / 'corpus'}",
            "--set", f"search.cache.dir={tmp_path / 'cache'}"]


def test_index_query_visit_export(tmp_path, capsys):
    sets = _sets(tmp_path)
    assert main(["search", "index", *sets]) == 0
    assert "2 pages, snapshot kb-" in capsys.readouterr().out
    assert main(["search", "query", "alpha lake?", "--top-k", "1", *sets]) == 0
    out = capsys.readouterr().out
    assert "1. Alpha Lake\n   URL: https://example.org/a" in out
    assert main(["search", "visit", "https://example.org/b", *sets]) == 0
    assert "Beta River flows from Alpha Lake to the sea." in capsys.readouterr().out
    assert main(["search", "export", str(tmp_path / "frozen.jsonl"), *sets]) == 0
    assert "exported 1 searches and 1 pages" in capsys.readouterr().out
    fb = FrozenBackend(tmp_path / "frozen.jsonl")
    assert fb.search("alpha  lake?", 1)[0]["url"] == "https://example.org/a"


def test_serve_answers_over_http(tmp_path):
    sets = _sets(tmp_path)
    assert main(["search", "index", *sets]) == 0
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-m", "crucible.pipelines.cli", "search", "serve", "--port", "0", *sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" on ")[1].split()[0]
        client = SearxngBackend(url, HttpClient(timeout_s=5, max_retries=0, backoff_s=0.01, rate_limit_per_s=0))
        assert [r["url"] for r in client.search("Beta River", 2)][0] == "https://example.org/b"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
