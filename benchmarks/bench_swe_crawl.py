"""GitHub PR crawl against the loopback fake: client overhead (PRs/s), requests per PR and per kept row
(what bounds a real crawl: 5,000 requests/hour with a token), and the cost of a resumed rerun."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from crucible.pipelines.swe.github import crawl
from crucible.pipelines.swe.github_client import GitHubClient
from tests.support.fake_github import FakeGitHub, comment, commit

REPO = "bench/repo"
DIFF = ("diff --git a/pkg/mod.py b/pkg/mod.py\n--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"
        "diff --git a/tests/test_mod.py b/tests/test_mod.py\n--- a/tests/test_mod.py\n+++ b/tests/test_mod.py\n"
        "@@ -1 +1 @@\n-x = 1\n+x = 2\n")


def _script(gh: FakeGitHub, n: int) -> None:
    """40% unmerged, 30% merged without an issue reference, 30% merged fixing an issue with 2 comments."""
    for i in range(1, n + 1):
        kind = i % 10
        body = f"fixes #{100000 + i}" if kind >= 7 else "refactor"
        gh.add_pull(REPO, i, title=f"pr {i}", body=body, merged=kind >= 4, diff=DIFF,
                    created_at=f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    commits=[commit(f"{i:040x}", "work", "2024-02-01T00:00:00Z")])
        if kind >= 7:
            gh.add_issue(REPO, 100000 + i, f"bug {i}", "details", comments=[
                comment("hint", "2024-01-15T00:00:00Z"), comment("later", "2024-03-01T00:00:00Z")])


def main() -> list[dict]:
    logging.getLogger("crucible.pipelines.swe.github").setLevel(logging.WARNING)
    results = []
    n = 1000
    with FakeGitHub(rate_limit=10**9) as gh, tempfile.TemporaryDirectory() as d:
        _script(gh, n)
        out = Path(d) / "prs.jsonl"
        client = GitHubClient(gh.base_url, environ={})
        t0 = time.perf_counter()
        s = crawl(client, [REPO], out_path=out)
        wall = time.perf_counter() - t0
        r = {"bench": "swe_crawl", "prs": n, "kept": s.kept, "rejected": dict(s.rejected), "wall_s": round(wall, 3),
             "prs_per_s": round(n / wall, 1), "requests": s.requests, "requests_per_pr": round(s.requests / n, 2),
             "requests_per_kept_row": round(s.requests / max(s.kept, 1), 2),
             "kept_rows_per_5000_requests": int(5000 * s.kept / s.requests)}
        print(json.dumps(r), flush=True)
        results.append(r)
        t0 = time.perf_counter()
        s2 = crawl(GitHubClient(gh.base_url, environ={}), [REPO], out_path=out)
        wall = time.perf_counter() - t0
        r = {"bench": "swe_crawl_resume", "prs": n, "new_rows": s2.kept, "skipped": s2.skipped,
             "requests": s2.requests, "wall_s": round(wall, 3)}
        print(json.dumps(r), flush=True)
        results.append(r)
    return results


if __name__ == "__main__":
    main()
