"""GitHub PR crawl (pipelines/swe/github*.py) against the fake GitHub server over loopback.

The scripted repo's diffs come from a real tiny git repo, so crawled patches are checked with
``git apply --check`` at ``base_commit`` and the output file is read back by ``read_instances``."""

import json
import logging
import subprocess
from pathlib import Path

import pytest

from crucible.pipelines.swe.github import crawl, crawl_repo, rejected_path_for
from crucible.pipelines.swe.github_client import (
    GitHubClient,
    GitHubError,
    NotFoundError,
    RateLimitError,
    next_link,
)
from crucible.pipelines.swe.github_rules import (
    hints_before,
    is_valid_pull,
    parse_time,
    pull_to_instance,
    resolved_issues,
)
from crucible.pipelines.swe.sources import read_instances
from tests.support.fake_github import FakeGitHub, Fault, comment, commit

REPO = "acme/calc"
T0 = 1_800_000_000.0


class FakeClock:
    """Shared by client and server: ``sleep`` advances time instead of sleeping."""

    def __init__(self, t=T0):
        self.t = t
        self.slept = []

    def time(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_repo(tmp_path_factory.mktemp("calc"))


def make_tiny_repo(d: Path) -> dict:
    """A git repo with a buggy ``calc.add`` at ``base``; diffs: a fix + test, tests only, source only."""
    git(d, "init", "-q", "-b", "main")
    git(d, "config", "user.email", "t@example.invalid")
    git(d, "config", "user.name", "t")
    (d / "tests").mkdir()
    (d / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n")
    (d / "tests" / "test_calc.py").write_text("from calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n")
    git(d, "add", "-A")
    git(d, "commit", "-qm", "base")
    base = git(d, "rev-parse", "HEAD").strip()
    (d / "calc.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    (d / "tests" / "test_calc.py").write_text("from calc import add, sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2"
                                              "\n\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    git(d, "commit", "-qam", "fix add")
    fix = git(d, "rev-parse", "HEAD").strip()
    full = git(d, "diff", base, fix)
    tests_only = git(d, "diff", base, fix, "--", "tests")
    source_only = git(d, "diff", base, fix, "--", "calc.py")
    return {"dir": d, "base": base, "fix": fix, "full": full, "tests_only": tests_only, "source_only": source_only}


def c(sha, msg, date="2024-03-10T12:00:00Z"):
    return commit(sha * 40 if len(sha) == 1 else sha, msg, date)


def script_repo(gh, tiny):
    """PR 10..19, newest = highest number. Expected outcome per PR in EXPECTED."""
    b = tiny["base"]

    def pr(n, title, body="", **kw):
        kw.setdefault("diff", tiny["full"])
        kw.setdefault("commits", [c("a", "work")])
        gh.add_pull(REPO, n, title=title, body=body, base_sha=b, created_at=f"2024-03-{n:02d}T00:00:00Z", **kw)

    pr(10, "Fix add", "Fixes #1\n\n<!-- closes #2 -->")
    pr(11, "Fix add differently", "fixes #1", merged=False)
    pr(12, "Refactor", "no issue here, see #1")
    pr(13, "More tests", "closes #2", diff=tiny["tests_only"])
    pr(14, "Quick fix", "resolves #2", diff=tiny["source_only"])
    pr(15, "Fix a gone issue", "fixes #99")
    pr(16, "Fix via commit message", "", commits=[c("b", "wip"), c("c", "Closes #3 properly")])
    pr(17, "Follow-up", "fixes #10")  # 10 is a pull request, not an issue
    pr(18, "Huge", "fixes #3", diff=None)  # GitHub answers 406 "diff too large"
    pr(19, "Other repo", "fixes other/repo#3")
    gh.add_issue(REPO, 1, "add() subtracts", "add(1, 2) returns -1", comments=[
        comment("confirmed, looks like a sign error", "2024-03-01T00:00:00Z"),
        comment("edited after the fix: use +", "2024-03-02T00:00:00Z", updated_at="2024-03-20T00:00:00Z"),
        comment("fixed in #10", "2024-03-15T00:00:00Z"),
    ])
    gh.add_issue(REPO, 2, "sub is untested", "")
    gh.add_issue(REPO, 3, "add is wrong", "body 3")


EXPECTED_KEPT = ["acme__calc-16", "acme__calc-10"]
EXPECTED_REJECTED = {11: "not_merged", 12: "no_linked_issue", 13: "no_source_patch", 14: "no_test_patch",
                     15: "issue_unavailable", 17: "linked_issue_is_pull", 18: "diff_unavailable",
                     19: "no_linked_issue"}


def client_for(gh, clock=None, **kw):
    clock = clock or FakeClock()
    return GitHubClient(gh.base_url, environ=kw.pop("environ", {}), clock=clock.time, sleep=clock.sleep, **kw)


# -- pure logic --------------------------------------------------------------------------------------

def test_resolved_issues_keywords_forms_and_other_repos():
    text = ("Fixes #12 and closes: #3. RESOLVED #4\nfix acme/calc#5, Fixes https://github.com/acme/calc/issues/6 "
            "closed ACME/Calc#7 fixes #12 again")
    assert resolved_issues(text, REPO) == [12, 3, 4, 5, 6, 7]
    for negative in ("see #7", "prefix #8", "fixing #9", "fixes other/repo#10", "<!-- fixes #11 -->",
                     "fixes#12", "Fixes https://github.com/other/calc/issues/13", "closes issue 14", ""):
        assert resolved_issues(negative, REPO) == [], negative
    assert resolved_issues("<!-- template: fixes #1 -->\nresolves #2", REPO) == [2]


def test_is_valid_pull_and_hints_before():
    assert is_valid_pull({"merged_at": None}, [1]) == (False, "not_merged")
    assert is_valid_pull({"merged_at": "2024-01-01T00:00:00Z"}, []) == (False, "no_linked_issue")
    assert is_valid_pull({"merged_at": "2024-01-01T00:00:00Z"}, [1]) == (True, None)
    start = parse_time("2024-03-10T12:00:00Z")
    comments = [comment("before", "2024-03-10T11:59:59Z"), comment("at", "2024-03-10T12:00:00Z"),
                comment("edited later", "2024-03-01T00:00:00Z", updated_at="2024-03-11T00:00:00Z"),
                comment("", "2024-03-01T00:00:00Z"), comment("after", "2024-04-01T00:00:00Z")]
    assert hints_before(comments, start) == ["before"]
    assert hints_before(comments, None) == []


def test_pull_to_instance_reasons(tiny):
    pr = {"number": 5, "merged_at": "2024-01-01T00:00:00Z", "base": {"sha": tiny["base"]},
          "created_at": "2024-01-01T00:00:00Z"}
    issue = [{"number": 1, "title": "t", "body": "b"}]
    assert pull_to_instance(REPO, pr, diff=tiny["tests_only"], issues=issue, hints=[]) == (None, "no_source_patch")
    assert pull_to_instance(REPO, pr, diff=tiny["source_only"], issues=issue, hints=[]) == (None, "no_test_patch")
    assert pull_to_instance(REPO, pr, diff="", issues=issue, hints=[]) == (None, "diff_unavailable")
    assert pull_to_instance(REPO, pr, diff=tiny["full"], issues=[], hints=[]) == (None, "issue_unavailable")
    assert pull_to_instance(REPO, {**pr, "merged_at": None}, diff=tiny["full"], issues=issue, hints=[]) == \
        (None, "not_merged")
    row, reason = pull_to_instance(REPO, pr, diff=tiny["full"], issues=issue, hints=["h1", "h2"])
    assert reason is None and row["instance_id"] == "acme__calc-5" and row["problem_statement"] == "t\nb\n"
    assert row["hints_text"] == "h1\nh2" and row["issue_numbers"] == ["1"]
    assert "calc.py" in row["patch"] and "tests/test_calc.py" not in row["patch"]
    assert "tests/test_calc.py" in row["test_patch"] and "diff --git a/calc.py" not in row["test_patch"]


def test_next_link_parses_github_link_header():
    h = ('<https://x/repos/o/r/pulls?page=2>; rel="next", <https://x/repos/o/r/pulls?page=5>; rel="last"')
    assert next_link(h) == "https://x/repos/o/r/pulls?page=2"
    assert next_link('<https://x/p?page=1>; rel="prev"') is None and next_link(None) is None


# -- client over loopback ----------------------------------------------------------------------------

def test_pagination_follows_link_next_across_pages():
    with FakeGitHub() as gh:
        for n in range(1, 6):
            gh.add_pull(REPO, n, title=f"pr {n}", created_at=f"2024-01-{n:02d}T00:00:00Z")
        client = client_for(gh, per_page=2)
        numbers = [p["number"] for p in client.pulls(REPO)]
        assert numbers == [5, 4, 3, 2, 1]
        lists = [r for r in gh.requests if r.path == f"/repos/{REPO}/pulls"]
        assert [r.query.get("page", "1") for r in lists] == ["1", "2", "3"]
        assert all(r.query["per_page"] == "2" and r.query["state"] == "closed" for r in lists)
        assert client.requests_made == 3


def test_crawl_end_to_end_rows_rejections_patches_apply(tiny, tmp_path):
    out = tmp_path / "prs.jsonl"
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        summary = crawl(client_for(gh), [REPO], out_path=out)
        paths = gh.paths()
    assert [r["instance_id"] for r in summary.rows] == EXPECTED_KEPT
    rejected = {r["pull_number"]: r["reason"] for r in map(json.loads, rejected_path_for(out).read_text().splitlines())}
    assert rejected == EXPECTED_REJECTED
    assert summary.kept == 2 and sum(summary.rejected.values()) == len(EXPECTED_REJECTED)
    assert summary.requests == len(paths)
    # unmerged PRs cost nothing beyond the listing
    assert not any(p.startswith(f"/repos/{REPO}/pulls/11") for p in paths)

    good, problems = read_instances(out)
    assert problems == [] and [g["instance_id"] for g in good] == EXPECTED_KEPT
    by_id = {r["instance_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    r10 = by_id["acme__calc-10"]
    assert r10["issue_numbers"] == ["1"]  # the 'closes #2' inside an HTML comment is ignored
    assert r10["problem_statement"] == "add() subtracts\nadd(1, 2) returns -1\n"
    assert r10["hints_text"] == "confirmed, looks like a sign error"  # only before the first commit, unedited
    assert r10["base_commit"] == tiny["base"] and r10["pull_number"] == 10
    assert r10["FAIL_TO_PASS"] is None and r10["version"] is None
    assert by_id["acme__calc-16"]["issue_numbers"] == ["3"]  # found in a commit message

    work = tmp_path / "work"
    git(tiny["dir"], "worktree", "add", "-q", "--detach", str(work), r10["base_commit"])
    for part in ("patch", "test_patch"):
        (tmp_path / f"{part}.diff").write_text(r10[part])
        subprocess.run(["git", "apply", "--check", str(tmp_path / f"{part}.diff")], cwd=work, check=True)
    subprocess.run(["git", "apply", str(tmp_path / "patch.diff"), str(tmp_path / "test_patch.diff")], cwd=work,
                   check=True)
    assert git(work, "diff", tiny["fix"]) == ""  # patch + test_patch == the PR's change


def test_resumable_rerun_writes_nothing_new_and_only_lists(tiny, tmp_path):
    out = tmp_path / "prs.jsonl"
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        crawl(client_for(gh), [REPO], out_path=out)
        before = (out.read_text(), rejected_path_for(out).read_text())
        gh.reset_stats()
        again = crawl(client_for(gh), [REPO], out_path=out)
        assert again.kept == 0 and not again.rejected and again.skipped == 10
        assert gh.paths() == [f"/repos/{REPO}/pulls"]  # one listing page, nothing per PR
        assert (out.read_text(), rejected_path_for(out).read_text()) == before

        # an interrupted run left a torn last line: it is dropped and that PR is crawled again
        rows = out.read_text().splitlines()
        out.write_text(rows[0] + "\n" + rows[1][:40])
        third = crawl(client_for(gh), [REPO], out_path=out)
    assert third.kept == 1 and third.rows[0]["instance_id"] == json.loads(rows[1])["instance_id"]
    # a complete last row without its newline is kept, and the next append starts on a new line
    rej = rejected_path_for(out)
    rej.write_text(rej.read_text().rstrip("\n"))
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        fourth = crawl(client_for(gh), [REPO], out_path=out)
    assert fourth.kept == 0 and not fourth.rejected and fourth.skipped == 10
    assert all(json.loads(x) for x in rej.read_text().splitlines()) and rej.read_text().endswith("\n")
    (tmp_path / "bad.jsonl").write_text("not json\n{}\n")
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        crawl(GitHubClient("http://127.0.0.1:9", environ={}), [REPO], out_path=tmp_path / "bad.jsonl")
    good, problems = read_instances(out)
    assert problems == [] and sorted(g["instance_id"] for g in good) == sorted(EXPECTED_KEPT)


def test_max_pulls_and_since_bound_the_listing(tiny, tmp_path):
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        got = list(crawl_repo(client_for(gh), REPO, max_pulls=3))
        assert [(r or {}).get("pull_number") or j.pull_number for r, j in got] == [19, 18, 17]
        got = list(crawl_repo(client_for(gh), REPO, since="2024-03-16"))
        assert sorted((r or {}).get("pull_number") or j.pull_number for r, j in got) == [16, 17, 18, 19]


def test_proactive_wait_until_reset_when_remaining_hits_zero(tiny, tmp_path):
    clock = FakeClock()
    with FakeGitHub(clock=clock.time) as gh:
        script_repo(gh, tiny)
        gh.set_rate_limit(remaining=1, reset_in_s=1.0)  # the listing uses the last request
        summary = crawl(client_for(gh, clock), [REPO], out_path=tmp_path / "o.jsonl")
        statuses = [r.status for r in gh.requests]
    assert clock.slept == [pytest.approx(2.0)]  # until the reset (T0 + 1) plus the 1 s margin
    assert 403 not in statuses  # it waited before asking, so GitHub never refused
    assert summary.kept == 2 and summary.waited_s == pytest.approx(clock.slept[0])


def test_403_rate_limited_waits_for_reset_and_retries(tiny, tmp_path):
    clock = FakeClock()
    with FakeGitHub(clock=clock.time) as gh:
        script_repo(gh, tiny)
        gh.set_rate_limit(remaining=0, reset_in_s=5.0)
        summary = crawl(client_for(gh, clock), [REPO], out_path=tmp_path / "o.jsonl")
        statuses = [r.status for r in gh.requests]
    assert statuses[0] == 403 and statuses[1] == 200 and statuses.count(403) == 1
    assert clock.slept == [pytest.approx(6.0)]  # reset in 5 s + 1 s margin
    assert summary.kept == 2


def test_reset_beyond_max_wait_raises_with_retry_time_then_rerun_resumes(tiny, tmp_path):
    clock = FakeClock()
    out = tmp_path / "o.jsonl"
    with FakeGitHub(clock=clock.time) as gh:
        script_repo(gh, tiny)
        gh.set_rate_limit(remaining=12, reset_in_s=7200)
        with pytest.raises(RateLimitError) as ei:
            crawl(client_for(gh, clock, max_rate_limit_wait_s=60), [REPO], out_path=out)
        msg = str(ei.value)
        assert "resets at 2027-01-15T10:00:01Z" in msg and "rerun after" in msg and "max_rate_limit_wait_s=60" in msg
        assert "GITHUB_TOKEN" in msg  # unauthenticated: suggests a token
        assert clock.slept == []  # it did not wait
        assert ei.value.summary.kept == 1 and sum(ei.value.summary.rejected.values()) == 3
        # work done before the limit is on disk: PR 19, 18, 17 rejected, PR 16 kept
        partial = [json.loads(x)["pull_number"] for x in rejected_path_for(out).read_text().splitlines()]
        assert partial == [19, 18, 17] and [json.loads(x)["pull_number"] for x in out.read_text().splitlines()] == [16]
        clock.t += 7200
        summary = crawl(client_for(gh, clock), [REPO], out_path=out)
    assert summary.skipped == 4 and summary.kept == 1
    good, _ = read_instances(out)
    assert sorted(g["instance_id"] for g in good) == sorted(EXPECTED_KEPT)
    rej = [json.loads(x) for x in rejected_path_for(out).read_text().splitlines()]
    assert {r["pull_number"]: r["reason"] for r in rej} == EXPECTED_REJECTED and len(rej) == len(EXPECTED_REJECTED)


def test_403_with_retry_after_and_502_are_retried(tiny, tmp_path):
    clock = FakeClock()
    with FakeGitHub(clock=clock.time) as gh:
        script_repo(gh, tiny)
        gh.fault(Fault(403, path=r"/issues/1$", headers={"Retry-After": "3"},
                       body={"message": "You have exceeded a secondary rate limit."}),
                 Fault(502, path=r"/pulls/10/commits$", body={"message": "Server Error"}))
        summary = crawl(client_for(gh, clock), [REPO], out_path=tmp_path / "o.jsonl")
        paths = gh.paths()
    assert sorted(clock.slept) == [1.0, 3.0]  # first 5xx backoff, then Retry-After
    assert paths.count(f"/repos/{REPO}/issues/1") == 2 and paths.count(f"/repos/{REPO}/pulls/10/commits") == 2
    assert [r["instance_id"] for r in summary.rows] == EXPECTED_KEPT


def test_persistent_5xx_becomes_api_error_and_is_retried_next_run(tiny, tmp_path):
    clock = FakeClock()
    out = tmp_path / "o.jsonl"
    with FakeGitHub(clock=clock.time) as gh:
        script_repo(gh, tiny)
        gh.fault(Fault(503, path=r"/pulls/10/commits$", times=3))
        first = crawl(client_for(gh, clock, max_retries=2), [REPO], out_path=out)
        assert first.rejected["api_error"] == 1 and "acme__calc-10" not in [r["instance_id"] for r in first.rows]
        assert clock.slept == [1.0, 2.0]  # bounded exponential backoff
        gh.reset_stats()
        second = crawl(client_for(gh, clock), [REPO], out_path=out)
    assert [r["instance_id"] for r in second.rows] == ["acme__calc-10"]


def test_connection_errors_retry_with_bounded_backoff_then_fail_clearly():
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = FakeClock()
    client = GitHubClient(f"http://127.0.0.1:{port}", environ={}, clock=clock.time, sleep=clock.sleep,
                          max_retries=3, max_rate_limit_wait_s=0)  # backoff is not a rate-limit wait
    with pytest.raises(GitHubError, match=r"ConnectionError after 4 attempts"):
        client.issue(REPO, 1)
    assert clock.slept == [1.0, 2.0, 4.0] and client.requests_made == 4


def test_404_and_401_are_clear_errors():
    with FakeGitHub() as gh:
        gh.add_issue(REPO, 1, "x")
        client = client_for(gh, environ={"GITHUB_TOKEN": "bad"})
        with pytest.raises(NotFoundError, match=r"/issues/2: HTTP 404 Not Found .*GITHUB_TOKEN"):
            client.issue(REPO, 2)
        gh.fault(Fault(401, body={"message": "Bad credentials"}))
        with pytest.raises(GitHubError, match=r"401 Bad credentials: the token in \$GITHUB_TOKEN was rejected"):
            client.issue(REPO, 1)
        assert client.issue(REPO, 1)["title"] == "x"


def test_token_sent_only_when_env_var_set_and_never_logged(tiny, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        client = client_for(gh, environ={"MY_GH_TOKEN": "s3cret-token"}, token_env="MY_GH_TOKEN")
        crawl(client, [REPO], out_path=tmp_path / "a.jsonl", progress_every_s=0)
        auth = {r.headers.get("authorization") for r in gh.requests}
        assert auth == {"Bearer s3cret-token"}
        assert all(r.headers["x-github-api-version"] == "2022-11-28" for r in gh.requests)
        assert "s3cret" not in repr(client) and "s3cret" not in caplog.text
        gh.reset_stats()
        anon = client_for(gh, environ={"GITHUB_TOKEN": "other"}, token_env="MY_GH_TOKEN")
        crawl(anon, [REPO], out_path=tmp_path / "b.jsonl")
        assert gh.requests and all("authorization" not in r.headers for r in gh.requests)
        assert not anon.authenticated
    assert "requests, rate limit remaining" in caplog.text  # progress lines


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(ValueError, match="not an environment variable name"):
        GitHubClient("http://127.0.0.1:1", token_env="my-token")
    with pytest.raises(ValueError, match="must start with http"):
        GitHubClient("127.0.0.1:1")
    with FakeGitHub() as gh:
        with pytest.raises(ValueError, match="not owner/name"):
            list(crawl_repo(client_for(gh), "just-a-name"))
        with pytest.raises(ValueError, match="ending in .jsonl"):
            crawl(client_for(gh), [REPO], out_path=tmp_path / "x.parquet")


# -- CLI and config ------------------------------------------------------------------------------------

def test_cli_crawl_prints_summary_and_writes_rows(tiny, tmp_path, capsys, monkeypatch):
    from crucible.pipelines.cli import main

    out = tmp_path / "cli.jsonl"
    monkeypatch.setenv("CRUCIBLE_TEST_GH", "tok-123")
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        rc = main(["swe", "crawl", "--repo", REPO, "--out", str(out), "--api-url", gh.base_url,
                   "--token-env", "CRUCIBLE_TEST_GH", "--max-pulls", "9"])
        assert {r.headers.get("authorization") for r in gh.requests} == {"Bearer tok-123"}
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kept"] == 1 and summary["rejected"]["not_merged"] == 1
    assert sum(summary["rejected"].values()) == 8  # PR 19..11 minus the kept 16; PR 10 is beyond --max-pulls
    assert summary["requests"] > 1 and summary["out"] == str(out)
    good, problems = read_instances(out)
    assert problems == [] and [g["instance_id"] for g in good] == ["acme__calc-16"]

    for argv, err in ((["--repo", "bad"], "owner/name"), (["--repo", REPO, "--since", "yesterday"], "ISO date"),
                      (["--repo", REPO, "--max-pulls", "0"], ">= 1"), ([], "no repository")):
        assert main(["swe", "crawl", "--out", str(tmp_path / "x.jsonl"), "--api-url", "http://127.0.0.1:9",
                     *argv]) == 2
        assert err in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()  # bad arguments fail before anything is written

    with FakeGitHub() as gh:  # exhausted for 2 hours, allowed to wait 5 s: exit 3 saying when to rerun
        script_repo(gh, tiny)
        gh.set_rate_limit(remaining=0, reset_in_s=7200)
        rc = main(["swe", "crawl", "--repo", REPO, "--out", str(tmp_path / "rl.jsonl"), "--api-url", gh.base_url,
                   "--set", "swe.github.max_rate_limit_wait_s=5"])
    captured = capsys.readouterr()
    assert rc == 3 and "rerun after" in captured.err and json.loads(captured.out)["kept"] == 0


def test_config_section_defaults_and_validation():
    from crucible.pipelines.config import ConfigError, load_config

    cfg = load_config("swe")
    gh = cfg.swe.github
    assert gh.api_url == "https://api.github.com" and gh.token_env == "GITHUB_TOKEN" and list(gh.repos) == []
    assert gh.max_pulls is None and gh.since is None and gh.max_rate_limit_wait_s == 3600
    with pytest.raises(ConfigError, match="token"):
        load_config("swe", ["swe.github.token=abc"])
    with pytest.raises(ConfigError, match="repos"):
        load_config("swe", ["swe.github.repos=[notarepo]"])
    assert list(load_config("swe", ["swe.github.repos=[psf/requests]"]).swe.github.repos) == ["psf/requests"]


def test_output_path_helpers():
    assert rejected_path_for("/x/prs.jsonl") == Path("/x/prs.rejected.jsonl")


def test_token_is_not_sent_to_another_host_named_in_a_link_header():
    with FakeGitHub() as gh, FakeGitHub() as other:
        other.add_pull(REPO, 2, title="elsewhere")
        gh.fault(Fault(200, path=r"/pulls$", body=[{"number": 1, "title": "here", "created_at": "2024-01-01T00:00:00Z"}],
                       headers={"Link": f'<{other.base_url}/repos/{REPO}/pulls?state=closed&page=1>; rel="next"'}))
        client = client_for(gh, environ={"GITHUB_TOKEN": "tok"})
        assert [p["number"] for p in client.pulls(REPO)] == [1, 2]
        assert gh.requests[0].headers.get("authorization") == "Bearer tok"
        assert len(other.requests) == 1 and "authorization" not in other.requests[0].headers


def test_a_missing_repo_is_reported_and_the_others_are_crawled(tiny, tmp_path):
    with FakeGitHub() as gh:
        script_repo(gh, tiny)
        summary = crawl(client_for(gh), ["acme/missing", REPO], out_path=tmp_path / "o.jsonl")
    assert list(summary.repo_errors) == ["acme/missing"] and "HTTP 404" in summary.repo_errors["acme/missing"]
    assert [r["instance_id"] for r in summary.rows] == EXPECTED_KEPT
    assert summary.as_dict()["repo_errors"]["acme/missing"].startswith("GET ")
