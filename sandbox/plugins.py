"""The pytest plugins a graded or validated run loads: none autoloaded, ``-p`` for each one the env build
installed."""

from __future__ import annotations

# pytest11 entry points of the distributions installed outside the tree (by the env build), as "-p module"
# arguments: with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 these are the only plugins pytest loads, so package metadata
# a patch adds inside the tree (an evil *.dist-info on sys.path) registers nothing. pytest < 3.9 has no such
# switch and autoloads anyway (a second -p of the same plugin is an error): no list there; the sanitizer's
# drop of *.dist-info / *.egg-info files in patches is then the defense.
PLUGIN_LIST = """import os, re, sys
root = os.path.realpath(sys.argv[1]) + '/'
try:
    import pytest
    m = re.match(r'(\\d+)\\.(\\d+)', pytest.__version__)
    if m and (int(m.group(1)), int(m.group(2))) < (3, 9):
        sys.exit(0)  # no PYTEST_DISABLE_PLUGIN_AUTOLOAD before 3.9: it autoloads, and -p would register twice
except ImportError:
    pass
try:
    from importlib import metadata
    eps = [(str(d.locate_file('')), ep.value) for d in metadata.distributions() for ep in d.entry_points
           if ep.group == 'pytest11']
except Exception:
    import pkg_resources
    eps = [(d.location or '', ep.module_name) for d in pkg_resources.working_set
           for ep in d.get_entry_map().get('pytest11', {}).values()]
seen = set()
for loc, val in eps:
    mod = val.split(':')[0].strip()
    if (os.path.realpath(loc or '.') + '/').startswith(root) or not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_.]*', mod) or mod in seen:
        continue
    seen.add(mod)
    print('-p', mod)
"""


def plugin_lines(quote) -> list[str]:
    """Bash lines that disable plugin autoload and set ``$CRUCIBLE_PLUGINS`` (run from /testbed)."""
    return ["export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1",
            f'CRUCIBLE_PLUGINS=$(cd / && python -I -c {quote(PLUGIN_LIST)} "$OLDPWD" 2>/dev/null)']
