"""When a source was made, and the as-of date its dependencies resolve at.

:func:`source_date`: the day of a checkout (its commit, else its sdist's PKG-INFO, else the index's upload
date); :func:`default_as_of`: the as-of cut-off a source that old gets by default
(``sandbox.as_of_min_age_days``; the cut-off itself is ``crucible.sandbox.ladder.as_of_for``).
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from crucible.sandbox.ladder import as_of_for
from crucible.sandbox.sources import pkg_info_day


def source_date(checkout: Path, lookup=None) -> str | None:
    """When the source was made (YYYY-MM-DD): the date of the checkout's commit when it is a real one (a git
    repo at an old commit, a one-commit sdist repo dated at its release; a PKG-INFO in a git working tree has
    the checkout's mtime, not the release's), else the sdist's PKG-INFO mtime unless it is a
    reproducible-build fixed date, then ``lookup()`` (the index's upload date,
    ``sources.index_upload_date``); None when none is known. The fixed 2000-01-01 of undated one-commit
    repos (``sources.GIT_ENV``) is never taken."""
    day = commit_date(checkout)
    if day:
        return day
    if (Path(checkout) / "PKG-INFO").is_file():
        return pkg_info_day(checkout) or (lookup() if lookup is not None else None)
    return None


def commit_date(checkout: Path) -> str | None:
    """The committer date (YYYY-MM-DD) of HEAD in ``checkout`` when it is a git repo with a real date."""
    if not (Path(checkout) / ".git").exists():
        return None
    proc = subprocess.run(["git", "log", "-1", "--format=%cI"], cwd=checkout, capture_output=True, text=True)
    date = proc.stdout.strip()[:10]
    return date if proc.returncode == 0 and date and date > "2000-01-02" else None


def default_as_of(date: str | None, min_age_days: int, today: datetime | None = None) -> str | None:
    """As-of-date resolution by default for sources older than ``min_age_days`` (0 disables it)."""
    if not date or min_age_days <= 0:
        return None
    today = today or datetime.now(timezone.utc)
    made = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return as_of_for(date) if today - made >= timedelta(days=min_age_days) else None
