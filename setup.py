"""Import names (issue #26): the folders ``pipelines/``, ``sandbox/`` and ``schemas/`` install as the packages
``crucible.pipelines``, ``crucible.sandbox`` and ``crucible.schemas``, so they cannot collide with anything
else a user has installed under those common names. Everything else about the build is in pyproject.toml."""

from setuptools import find_packages, setup

FOLDERS = ("pipelines", "sandbox", "schemas")

setup(
    packages=[f"crucible.{p}" for p in find_packages(include=[f"{f}*" for f in FOLDERS])],
    package_dir={f"crucible.{f}": f for f in FOLDERS},
)
