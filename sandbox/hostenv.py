"""Facts about the host that builds need: the Debian mirror apt uses, the CA bundle, pip index settings.

All parsing is pure (text in, values out); the readers at the bottom touch the filesystem only when
called. No mirror host name is hard-coded: it is read from the host's apt sources at run time.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, OpenBSD
)
SECURITY_HINTS = ("security", "updates", "backports")


def parse_apt_sources(text: str) -> list[tuple[str, list[str]]]:
    """(uri, suites) pairs from one-line (``deb URI SUITE ...``) or deb822 (``URIs:``/``Suites:``) text."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            out.append((m.group(1), [m.group(2)]))
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.lstrip().startswith("#") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        if "uris" in fields and "deb" in fields.get("types", "deb").split() and fields.get("enabled", "yes") != "no":
            for uri in fields["uris"].split():
                out.append((uri, fields.get("suites", "").split()))
    return out


def pick_debian_mirror(sources: list[tuple[str, list[str]]]) -> str | None:
    """The first source that serves a plain Debian release suite (not security/updates/backports)."""
    for uri, suites in sources:
        plain = [s for s in suites if not any(h in s for h in SECURITY_HINTS)]
        if plain and ("debian" in uri.rstrip("/").rsplit("/", 1)[-1] or "debian" in uri) and "security" not in uri:
            return uri.rstrip("/")
    return None


def host_debian_mirror(root: str = "/") -> str | None:
    base = Path(root) / "etc/apt"
    texts = []
    if (base / "sources.list").is_file():
        texts.append((base / "sources.list").read_text(errors="replace"))
    d = base / "sources.list.d"
    if d.is_dir():
        for p in sorted(d.iterdir()):
            if p.suffix in (".list", ".sources"):
                texts.append(p.read_text(errors="replace"))
    return pick_debian_mirror([s for t in texts for s in parse_apt_sources(t)])


def find_ca_bundle(configured: str | None, candidates: tuple[str, ...] = SYSTEM_CA_BUNDLES) -> str | None:
    """The CA bundle passed to installs inside containers: the configured one (must exist), else the
    first system bundle found, else None (containers then use their own store)."""
    if configured:
        if not Path(configured).is_file():
            raise FileNotFoundError(
                f"sandbox.ca_bundle: {configured} does not exist; set it to a PEM bundle or null to auto-detect")
        return str(Path(configured).resolve())
    for c in candidates:
        if Path(c).is_file():
            return c
    return None


def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def pip_env_from_config(lines: list[str]) -> dict[str, str]:
    """Translate ``pip config list`` lines (``global.index-url='...'``) into PIP_* variables for use inside a
    container: remote index URLs and trusted hosts are kept; local paths (``file://`` indexes,
    find-links directories, constraint files) are dropped since they do not exist in a container."""
    vals: dict[str, list[str]] = {}
    for line in lines:
        m = re.match(r"^[^.]*\.([a-z-]+)='(.*)'$", line.strip())
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key in ("index-url", "extra-index-url", "trusted-host"):
            for v in value.split():
                if key == "trusted-host" or _is_remote(v):
                    vals.setdefault(key, [])
                    if v not in vals[key]:
                        vals[key].append(v)
    env = {}
    for key, items in vals.items():
        env["PIP_" + key.upper().replace("-", "_")] = " ".join(items) if key != "index-url" else items[-1]
    return env


def host_pip_env() -> dict[str, str]:
    try:
        proc = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    env = pip_env_from_config(proc.stdout.splitlines())
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"):
        if os.environ.get(key):
            merged = pip_env_from_config([f"env.{key[4:].lower().replace('_', '-')}='{os.environ[key]}'"])
            env.update(merged)
    return env
