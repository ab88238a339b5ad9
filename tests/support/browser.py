"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for page tests.

Selenium is told where the driver is, so it never tries to download one. The flags keep Chromium off
the network (this machine has none) and out of the user's profile.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000"]


def missing() -> str | None:
    """Why a browser test cannot run here (None = it can)."""
    for exe in ("chromium", "chromedriver"):
        if not shutil.which(exe):
            return f"{exe} not found: `make browser` installs Debian's chromium and chromium-driver (as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for f in CHROMIUM_FLAGS:
        opts.add_argument(f)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='crucible-chromium-')}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def screenshot(drv, dest_dir: Path, name: str) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{name}.png"
    drv.save_screenshot(str(path))
    return path


def navigate(drv, act, timeout_s: float = 20.0) -> None:
    """Run ``act()`` (a click or key press that leads to another page) and wait until the browser is on a
    new, fully loaded page: a click returns before the navigation it starts, so reading the URL or the body
    right after it may still see the old page (a loaded machine made that a CI failure)."""
    from selenium.webdriver.support.ui import WebDriverWait

    old = drv.current_url
    act()
    WebDriverWait(drv, timeout_s).until(
        lambda d: d.current_url != old and d.execute_script("return document.readyState") == "complete")
