"""The same recipe run directly on the host, in a fresh venv, without Docker: the reference that
container outcomes are compared with (same install ladder, same test command, same verdict logic)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from crucible.sandbox.recipes import install_script, test_script
from crucible.sandbox.testrun import TestRun, reconcile


def find_host_python(version: str) -> str | None:
    """An interpreter for ``version`` (e.g. "3.9") on this host: ``pythonX.Y`` on PATH or a pyenv build."""
    cands = []
    exe = shutil.which(f"python{version}")
    if exe and "/shims/" not in exe:  # pyenv shims fail unless that version is selected
        cands.append(exe)
    for pat in (f"~/.pyenv/versions/{version}.*/bin/python{version}", f"/opt/python/{version}*/bin/python{version}"):
        cands += sorted(glob.glob(os.path.expanduser(pat)), reverse=True)
    for c in cands:
        ok = subprocess.run([c, "-c", "import sys, venv; print(sys.version)"], capture_output=True, text=True)
        if ok.returncode == 0 and ok.stdout.startswith(version + "."):
            return c
    return None


def host_run(tree: Path, recipe: dict, python: str, workdir: Path, timeout_s: int = 1800) -> dict:
    """Copy ``tree`` to ``workdir/tree``, make a venv with ``python``, run the recipe's install ladder and
    then its test command. Returns {install_seconds, install_ok, run: TestRun, test_seconds}."""
    workdir = Path(workdir)
    src = workdir / "tree"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(tree, src, symlinks=True)
    venv = workdir / "venv"
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": str(workdir)}
    env.pop("PYTHONPATH", None)
    t0 = time.monotonic()
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "-U", "pip", "setuptools", "wheel"],
                   env=env, capture_output=True, timeout=timeout_s)
    script = install_script(recipe).replace("cd /testbed", f"cd {src}").replace("(cd /testbed &&", f"(cd {src} &&")
    inst = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=timeout_s)
    install_seconds = time.monotonic() - t0
    junit = workdir / "junit.xml"
    if junit.exists():
        junit.unlink()
    tscript = test_script(recipe, str(junit)).replace("cd /testbed", f"cd {src}")
    t1 = time.monotonic()
    proc = subprocess.run(["bash", "-c", tscript], env=env, capture_output=True, text=True, timeout=timeout_s)
    secs = time.monotonic() - t1
    run: TestRun = reconcile(proc.returncode, proc.stdout + proc.stderr,
                             junit.read_text() if junit.exists() else None, seconds=secs)
    return {"install_seconds": install_seconds, "install_ok": inst.returncode == 0, "run": run,
            "test_seconds": secs, "install_log_tail": (inst.stdout + inst.stderr)[-2000:]}
