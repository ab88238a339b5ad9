"""The pytest plugins a graded or validated run loads: none autoloaded, ``-p`` for each one the env build
installed."""

from __future__ import annotations

# pytest11 entry points of the distributions installed outside the tree (by the env build), as "-p module"
# arguments: with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 these are the only plugins pytest loads, so package metadata
# a patch adds inside the tree (an evil *.dist-info on sys.path) registers nothing.
# pytest < 3.8 (the switch came with 3.8.0) ignores PYTEST_DISABLE_PLUGIN_AUTOLOAD and autoloads every entry point; a "-p module" on top
# registers a plugin twice ("ValueError: Plugin already registered", requests 2.25.1 as of 2020 with pytest
# 3.5.1), so there the env's plugins are left to autoload and the tree's are blocked by name ("-p no:name").
PLUGIN_LIST = """import os, re, sys
root = os.path.realpath(sys.argv[1]) + '/'
try:
    from importlib import metadata
    eps = [(str(d.locate_file('')), ep.name, ep.value) for d in metadata.distributions() for ep in d.entry_points
           if ep.group == 'pytest11']
    version = metadata.version('pytest')
except Exception:
    import pkg_resources
    eps = [(d.location or '', ep.name, ep.module_name) for d in pkg_resources.working_set
           for ep in d.get_entry_map().get('pytest11', {}).values()]
    version = pkg_resources.get_distribution('pytest').version
old = tuple(int(x) for x in re.findall(r'\\d+', version)[:2]) < (3, 8)
seen = set()
for loc, name, val in eps:
    mod = val.split(':')[0].strip()
    in_tree = (os.path.realpath(loc or '.') + '/').startswith(root)
    if old:
        if in_tree and re.fullmatch(r'[A-Za-z0-9_.-]+', name) and name not in seen:
            seen.add(name)
            print('-p', 'no:' + name)
        continue
    if in_tree or not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_.]*', mod) or mod in seen:
        continue
    seen.add(mod)
    print('-p', mod)
"""


def plugin_lines(quote) -> list[str]:
    """Bash lines that disable plugin autoload and set ``$CRUCIBLE_PLUGINS`` (run from /testbed)."""
    return ["export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1",
            f'CRUCIBLE_PLUGINS=$(cd / && python -I -c {quote(PLUGIN_LIST)} "$OLDPWD" 2>/dev/null)']
