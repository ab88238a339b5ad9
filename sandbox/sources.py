"""Repositories to test: a PyPI sdist (``name==version``) turned into a one-commit git repo, or any git
URL / local bare mirror through a URL template with ``{owner}``, ``{name}``, ``{repo}`` placeholders;
:func:`release_mirror` builds such a bare mirror from a project's sdist releases (one dated commit each).

Errors are :class:`SourceError` with a message naming what was asked, what failed and how to fix it
(missing commit, unreachable source, repo with no tests)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from packaging.version import InvalidVersion, Version

DEFAULT_URL_TEMPLATE = "https://github.com/{repo}.git"
GIT_ENV = {"GIT_AUTHOR_NAME": "crucible", "GIT_AUTHOR_EMAIL": "crucible@localhost",
           "GIT_COMMITTER_NAME": "crucible", "GIT_COMMITTER_EMAIL": "crucible@localhost",
           "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
           "GIT_TERMINAL_PROMPT": "0"}
# mtimes build backends write for reproducible archives (hatchling: 2020-02-02; flit and others: the epoch)
FIXED_MTIME_DAYS = ("1970-01-01", "1980-01-01", "2020-02-02")
SDIST_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


class SourceError(RuntimeError):
    """A repository could not be obtained; the message says which, why and what to do."""


@dataclass(frozen=True)
class Checkout:
    path: Path
    commit: str
    name: str
    origin: str


def _git(args: list[str], cwd: Path | None = None, timeout: int = 600,
         env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **GIT_ENV, **(env or {})})


def repo_url(template: str, repo: str) -> str:
    """Fill ``{owner}``, ``{name}``, ``{repo}`` for ``repo`` = ``owner/name``."""
    if "/" not in repo:
        raise SourceError(f"repo {repo!r}: expected owner/name (e.g. marshmallow-code/marshmallow)")
    owner, name = repo.split("/", 1)
    try:
        return template.format(owner=owner, name=name, repo=repo)
    except (KeyError, IndexError) as exc:
        raise SourceError(f"repo URL template {template!r}: unknown placeholder {exc}; "
                          "allowed: {owner}, {name}, {repo}") from None


def init_one_commit(path: Path, message: str, date: str | None = None) -> str:
    """``git init`` + add everything + one commit with fixed identity and date (same tree -> same sha): the
    fixed 2000-01-01 of ``GIT_ENV``, or ``date`` (YYYY-MM-DD, e.g. the sdist's release day)."""
    stamp = {"GIT_AUTHOR_DATE": f"{date}T12:00:00Z", "GIT_COMMITTER_DATE": f"{date}T12:00:00Z"} if date else {}
    for args in (["init", "-q"], ["add", "-A", "-f"], ["commit", "-q", "--no-gpg-sign", "-m", message]):
        proc = _git(args, cwd=path, env=stamp)
        if proc.returncode != 0:
            raise SourceError(f"{path}: git {' '.join(args)} failed: {proc.stderr.strip()}")
    return _git(["rev-parse", "HEAD"], cwd=path).stdout.strip()


def pkg_info_day(tree: Path) -> str | None:
    """The day (YYYY-MM-DD) of an unpacked sdist's PKG-INFO mtime (the archive keeps it), unless it is missing
    or a reproducible-build fixed date (``FIXED_MTIME_DAYS``): then None."""

    pkg = Path(tree) / "PKG-INFO"
    if not pkg.is_file():
        return None
    day = datetime.fromtimestamp(pkg.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    return day if day > "2000-01-02" and day not in FIXED_MTIME_DAYS else None


def unpack_archive(archive: Path, dest: Path) -> Path:
    """Unpack an sdist (.tar.gz/.tar.bz2/.zip) into ``dest``; returns its single top directory."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for n in zf.namelist():
                if n.startswith("/") or ".." in Path(n).parts:
                    raise SourceError(f"{archive}: unsafe path {n!r} in archive")
            zf.extractall(dest)
    else:
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        except tarfile.TarError as exc:
            raise SourceError(f"{archive}: not an sdist archive ({exc})") from None
    tops = [p for p in dest.iterdir()]
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else dest


def from_sdist(spec: str, workdir: Path, pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
               remote_env: dict | None = None) -> Checkout:
    """Download ``name==version`` as an sdist with pip (host pip config applies), unpack it into
    ``workdir/<name>-<version>`` and make it a git repo with one commit dated at the release: the sdist's
    PKG-INFO mtime when that is a real date, else the index's upload day (:func:`index_upload_date`, asked
    once: the date stays in the commit), else the fixed 2000-01-01. Reuses an existing checkout."""
    m = SDIST_RE.match(spec.strip())
    if not m:
        raise SourceError(f"sdist {spec!r}: expected NAME==VERSION, e.g. toolz==0.12.0")
    name, version = m.group(1), m.group(2)
    target = Path(workdir) / f"{name.lower()}-{version}"
    def release_day() -> str | None:
        return pkg_info_day(target) or index_upload_date(name, version, pip=pip, remote_env=remote_env)

    if (target / ".git").is_dir():
        head = _git(["log", "-1", "--format=%H %cI"], cwd=target)
        sha, _, when = head.stdout.strip().partition(" ")
        if head.returncode == 0 and sha:
            if when[:10] > "2000-01-02":
                return Checkout(target, sha, name, f"sdist:{spec}")
            undated = target / ".git" / "crucible-undated"  # asked before, no answer: not every run again
            day = None if undated.exists() else release_day()  # made before commits carried the release date
            if not day:
                undated.touch()
                return Checkout(target, sha, name, f"sdist:{spec}")
            shutil.rmtree(target / ".git")
            return Checkout(target, init_one_commit(target, f"{name} {version} from its sdist", day), name,
                            f"sdist:{spec}")
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory(prefix="crucible-sdist-") as tmp:
        proc = subprocess.run([*pip, "download", "--no-deps", "--no-binary", name,
                               "-d", tmp, f"{name}=={version}"], capture_output=True, text=True, timeout=600)
        files = [p for p in Path(tmp).iterdir() if p.is_file()]
        if proc.returncode != 0 or not files:
            tail = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()][-3:]
            raise SourceError(f"sdist {spec}: pip download failed (unreachable index, or no sdist for that "
                              f"version): {' | '.join(tail)}")
        top = unpack_archive(files[0], Path(tmp) / "unpacked")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(top), str(target))
    # dated at the release: a commit's date is the source's date (as-of resolution, the Python chosen)
    day = release_day()
    commit = init_one_commit(target, f"{name} {version} from its sdist", day)
    if not day:
        (target / ".git" / "crucible-undated").touch()
    return Checkout(target, commit, name, f"sdist:{spec}")


def first_day(present, lo, hi):
    """The earliest day d in (lo, hi] with ``present(d)`` true, for a ``present`` false before some day and
    true from then on (bisection: ~13 calls over 20 years); None when ``present(hi)`` is false."""
    if not present(hi):
        return None
    while (hi - lo).days > 1:
        mid = lo + (hi - lo) // 2
        if present(mid):
            hi = mid
        else:
            lo = mid
    return hi


def index_upload_date(name: str, version: str, pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
                      remote_env: dict | None = None) -> str | None:
    """The day (YYYY-MM-DD) ``name==version`` was uploaded to the remote index, found by asking pip which
    versions exist before a date (``pip index versions --uploaded-prior-to``). Local file indexes and
    find-links carry no upload times, so they are left out (``PIP_CONFIG_FILE=/dev/null``; ``remote_env``
    = the host's remote index settings, ``hostenv.host_pip_env()``). None when the index does not answer."""

    try:
        want = Version(version)
    except InvalidVersion:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(remote_env or {})})

    def present(day: date) -> bool:
        # few retries: an unreachable index must cost seconds per probe, not pip's default minutes
        proc = subprocess.run([*pip, "index", "versions", name, "--pre", "--retries", "1", "--timeout", "15",
                               "--uploaded-prior-to",
                               f"{day.isoformat()}T00:00:00Z"], capture_output=True, text=True, env=env, timeout=120)
        m = re.search(r"(?m)^Available versions: (.*)$", proc.stdout)
        found = set()
        for v in (m.group(1).split(", ") if m else []):
            try:
                found.add(Version(v.strip()))
            except InvalidVersion:
                continue
        return want in found

    day = first_day(present, date(2005, 1, 1), date.today() + timedelta(days=1))
    return (day - timedelta(days=1)).isoformat() if day else None


def from_git(repo: str, commit: str, workdir: Path, template: str = DEFAULT_URL_TEMPLATE) -> Checkout:
    """Clone ``repo`` (``owner/name``) through ``template`` into ``workdir/<owner>__<name>`` (reused when
    present; refreshed from origin unless ``commit`` is a full sha) and check out ``commit`` (a sha, tag or
    branch) as a detached, clean worktree."""
    url = repo_url(template, repo)
    target = Path(workdir) / repo.replace("/", "__")
    if (target / ".git").is_dir() and not re.fullmatch(r"[0-9a-f]{40}", commit):
        # a reused clone: a branch (or a moved tag) may have new commits upstream; a full sha cannot change
        fetch = _git(["fetch", "-q", "--force", "--tags", "--update-head-ok", "origin", "+refs/heads/*:refs/heads/*"],
                     cwd=target)
        if fetch.returncode != 0:
            raise SourceError(f"repo {repo}: cannot refresh {url} to resolve {commit!r} "
                              f"({fetch.stderr.strip()[-200:]}); pass a full commit sha or fix the URL template")
    if not (target / ".git").is_dir():
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = _git(["clone", "-q", "--no-checkout", url, str(target)])
        if proc.returncode != 0:
            raise SourceError(f"repo {repo}: cannot clone {url} ({proc.stderr.strip()[-300:]}); check the URL "
                              "template (--repo-url-template / sandbox.repo_url_template) or the mirror path")
    has = _git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=target)
    if has.returncode != 0:
        fetch = _git(["fetch", "-q", "origin", commit], cwd=target)
        has = _git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd=target)
        if has.returncode != 0:
            raise SourceError(f"repo {repo}: commit {commit} not found in {url} ({fetch.stderr.strip()[-200:]}); "
                              "is the mirror up to date?")
    for args in (["checkout", "-q", "--force", "--detach", commit], ["clean", "-qfdx"]):
        proc = _git(args, cwd=target)
        if proc.returncode != 0:
            raise SourceError(f"repo {repo}: git {' '.join(args)} failed: {proc.stderr.strip()}")
    full = _git(["rev-parse", "HEAD"], cwd=target).stdout.strip()
    return Checkout(target, full, repo, url)


def export_tree(checkout: Path, dest: Path) -> Path:
    """A copy of the checked-out tree without .git (``git archive``-like, keeps untracked-ignored out)."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["bash", "-c", 'git archive --format=tar HEAD | tar -x -C "$1"', "_", str(dest)],
                          cwd=checkout, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(f"{checkout}: git archive failed: {proc.stderr.strip()}")
    return dest


@dataclass(frozen=True)
class Release:
    """One release to commit to a mirror: its version, the unpacked tree (a ``.git`` in it is ignored) and
    the day it was made (YYYY-MM-DD; None = unknown, committed with the fixed date of ``GIT_ENV``)."""
    version: str
    tree: Path
    date: str | None


def mirror_path(root: Path, repo: str) -> Path:
    """``root/<owner>/<name>.git``, the bare mirror that ``file://<root>/{owner}/{name}.git`` reaches."""
    repo_url("{repo}", repo)  # validates owner/name
    owner, name = repo.split("/", 1)
    return Path(root) / owner / f"{name}.git"


def release_tag(version: str) -> str:
    return f"v{version}"


def sdist_release(spec: str, workdir: Path, pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
                  remote_env: dict | None = None) -> Release:
    """``name==version`` downloaded and unpacked (:func:`from_sdist`, PKG-INFO kept) and dated by its upload
    day on the remote index (:func:`index_upload_date`), else its PKG-INFO mtime when that is a real date."""

    co = from_sdist(spec, workdir, pip)
    name, _, version = spec.strip().partition("==")
    day = index_upload_date(name, version, pip, remote_env=remote_env) or pkg_info_day(co.path)
    return Release(version, co.path, day)


def release_mirror(root: Path, repo: str, specs: list[str], workdir: Path, *,
                   pip: tuple[str, ...] = (sys.executable, "-m", "pip"), remote_env: dict | None = None,
                   obtain=None) -> dict[str, str]:
    """A bare mirror ``root/<owner>/<name>.git`` of ``repo`` with one commit per release of ``specs``
    (``NAME==VERSION``, oldest first) on branch ``main``, each the whole sdist tree, authored and committed
    on the release's day (:func:`sdist_release`), tagged ``v<version>``. Releases already tagged are kept
    and not downloaded again; fixed identity, dates and trees make a rebuild give the same shas. ``obtain(spec,
    workdir) -> Release`` replaces the download (tests). Returns ``{version: sha}`` in ``specs`` order."""
    obtain = obtain or (lambda spec, wd: sdist_release(spec, wd, pip, remote_env))
    mirror = mirror_path(root, repo)

    def git(args, env=None, what="", cwd=None):
        proc = _git(["--git-dir", str(mirror), *args], cwd=cwd, env=env)
        if proc.returncode != 0:
            raise SourceError(f"mirror {mirror} of {repo}{what}: git {' '.join(args)} failed: "
                              f"{proc.stderr.strip()[-300:]}")
        return proc.stdout.strip()

    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        proc = _git(["init", "-q", "--bare", str(mirror)])
        if proc.returncode != 0:
            raise SourceError(f"mirror {mirror}: git init failed: {proc.stderr.strip()}")
        git(["symbolic-ref", "HEAD", "refs/heads/main"])
    out: dict[str, str] = {}
    parent = None
    for spec in specs:
        m = SDIST_RE.match(spec.strip())
        if not m:
            raise SourceError(f"release {spec!r} of {repo}: expected NAME==VERSION, e.g. Flask==1.1.2")
        version = m.group(2)
        tag = release_tag(version)
        have = _git(["--git-dir", str(mirror), "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}"])
        if have.returncode == 0:
            parent = out[version] = have.stdout.strip()
            continue
        rel = obtain(spec, Path(workdir))
        if rel.date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", rel.date):
            raise SourceError(f"release {spec} of {repo}: date {rel.date!r} is not YYYY-MM-DD")
        with tempfile.TemporaryDirectory(prefix="crucible-index-") as tmp:
            idx = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            git(["--work-tree", str(rel.tree), "add", "-A", "-f"], env=idx, what=f" at {spec}", cwd=rel.tree)
            tree = git(["write-tree"], env=idx, what=f" at {spec}")
        when = {"GIT_AUTHOR_DATE": f"{rel.date}T12:00:00Z", "GIT_COMMITTER_DATE": f"{rel.date}T12:00:00Z"} \
            if rel.date else {}
        sha = git(["commit-tree", tree, *(["-p", parent] if parent else []), "-m",
                   f"{m.group(1)} {version} from its sdist"], env=when, what=f" at {spec}")
        git(["tag", tag, sha])
        parent = out[version] = sha
    if parent:
        git(["update-ref", "refs/heads/main", parent])
    return out
