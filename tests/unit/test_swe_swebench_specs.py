"""SWE-bench recipe tables: importer (synthetic constants module and the committed data), requirement
gathering on a tree, conversion to sandbox recipes, env keys, and the auto/inferred switch."""

import json
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from crucible.pipelines.swe import swebench_import as si
from crucible.pipelines.swe import swebench_specs as sb
from crucible.sandbox.recipes import RecipeError, install_script, test_script
from tests.support.trees import write_tree as write

CONSTANTS = '''
import os
from enum import Enum
TEST_PYTEST = "pytest --no-header -rA"
TEST_PYTEST = "pytest -rA"
class Kind(Enum):
    A = 1
SPECS_FOO = {
    k: {"python": "3.9", "packages": "requirements.txt", "install": "python -m pip install -e .",
        "test_cmd": TEST_PYTEST}
    for k in ["1.0", "1.1"]
}
SPECS_FOO.update({"2.0": {**SPECS_FOO["1.1"], "python": "3.11", "pip_packages": ["b==2", "a==1"]}})
for k in ["1.1"]:
    SPECS_FOO[k]["pre_install"] = ["apt-get update && apt-get install -y graphviz"]
    if k in ["1.1"]:
        SPECS_FOO[k]["pip_packages"] = ["z==0"]
SPECS_BAR = {"0.1": {"python": "3.8", "packages": "environment.yml", "test_cmd": TEST_PYTEST}}
EVIL = os.system("echo pwned")
SNEAKY = SPECS_FOO.__class__
MAP_REPO_VERSION_TO_SPECS_PY = {"o/foo": SPECS_FOO, "o/bar": SPECS_BAR}
MAP_REPO_TO_REQS_PATHS = {"o/foo": ["requirements/dev.txt", "requirements_dev.txt"]}
MAP_REPO_TO_ENV_YML_PATHS = {"o/bar": ["environment.yml"]}
'''

TEST_SPEC = '''
import requests
REPLACE_REQ_PACKAGES = [("types-pkg_resources", "types-setuptools")]
def get_requirements_by_commit(repo, commit):
    exclude_line = lambda line: any([line.strip().startswith(x) for x in ["-e .", "#", ".[test"]])
    return ""
'''

PARSERS = '''
def parse_log_pytest(log, spec):
    return {}
parse_log_foo = parse_log_pytest
MAP_REPO_TO_PARSER_PY = {"o/foo": parse_log_foo}
'''


def make_wheel(tmp_path: Path, version: str = "4.0.9", constants: str = CONSTANTS) -> Path:
    whl = tmp_path / f"swebench-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("swebench/harness/constants/python.py", constants)
        zf.writestr("swebench/harness/constants/__init__.py", "NON_TEST_EXTS = ['.json', '.yml']\n")
        zf.writestr("swebench/harness/test_spec/python.py", TEST_SPEC)
        zf.writestr("swebench/harness/log_parsers/python.py", PARSERS)
        zf.writestr(f"swebench-{version}.dist-info/METADATA", f"Name: swebench\nVersion: {version}\n")
        zf.writestr(f"swebench-{version}.dist-info/licenses/LICENSE", "MIT License\n\nCopyright (c) test\n")
    return whl



# ---------------------------------------------------------------- importer

def test_import_synthetic_wheel_evaluates_data_and_skips_everything_else(tmp_path, capfd):
    data, lic = si.import_specs(make_wheel(tmp_path))
    assert capfd.readouterr().out == ""  # os.system never ran
    src = data["source"]
    assert src["version"] == "4.0.9" and src["table"] == "MAP_REPO_VERSION_TO_SPECS_PY" and src["license"] == "MIT"
    assert set(src["files"]) == {"swebench/harness/constants/python.py", "swebench/harness/constants/__init__.py",
                                 "swebench/harness/test_spec/python.py", "swebench/harness/log_parsers/python.py"}
    assert all(len(h) == 64 for h in src["files"].values())
    skipped = " | ".join(src["skipped_statements"])
    for why in ("import", "ClassDef", "call os.system", "attribute __class__"):
        assert why in skipped
    foo = data["specs"]["o/foo"]
    assert foo["1.0"] == {"python": "3.9", "packages": "requirements.txt", "install": "python -m pip install -e .",
                          "test_cmd": "pytest -rA"}  # the later TEST_PYTEST wins, as in SWE-bench
    assert foo["1.1"]["pre_install"] == ["apt-get update && apt-get install -y graphviz"]
    assert foo["1.1"]["pip_packages"] == ["z==0"]  # the for loop and its if ran
    assert foo["2.0"]["python"] == "3.11" and foo["2.0"]["pip_packages"] == ["b==2", "a==1"]
    assert data["reqs_paths"] == {"o/foo": ["requirements/dev.txt", "requirements_dev.txt"]}
    assert data["env_yml_paths"] == {"o/bar": ["environment.yml"]}
    assert data["requirements_rules"]["exclude_prefixes"] == ["-e .", "#", ".[test"]
    assert data["requirements_rules"]["exclude_prefixes_from"] == "test_spec"
    assert data["requirements_rules"]["replace"] == [["types-pkg_resources", "types-setuptools"]]
    assert data["non_test_exts"] == [".json", ".yml"]
    assert data["log_parsers"] == {"o/foo": "parse_log_pytest"}
    assert lic.startswith("MIT License")


def test_import_from_directory_equals_wheel_and_write_is_stable(tmp_path):
    whl = make_wheel(tmp_path)
    d = tmp_path / "unpacked"
    with zipfile.ZipFile(whl) as zf:
        zf.extractall(d)
    a, _ = si.import_specs(whl)
    b, lic = si.import_specs(d)
    assert a == b
    out = tmp_path / "cfg" / "specs.json"
    summary = si.write_specs(a, lic, out)
    assert summary == {"out": str(out), "swebench": "4.0.9", "repos": 2, "entries": 4,
                       "skipped_statements": len(a["source"]["skipped_statements"])}
    first = out.read_text()
    si.write_specs(a, lic, out)
    assert out.read_text() == first and (out.parent / sb.LICENSE_NAME).read_text().startswith("MIT")
    assert sb.load_specs(out)["specs"]["o/foo"]["1.0"]["python"] == "3.9"


def test_import_rejects_paths_without_tables(tmp_path):
    whl = tmp_path / "swebench-5.0.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("swebench/harness/grading.py", "X = 1\n")
    with pytest.raises(sb.SpecsImportError, match="5.x no longer ships"):
        si.import_specs(whl)
    bad = tmp_path / "notes.txt"
    bad.write_text("hi")
    with pytest.raises(sb.SpecsImportError, match="not a directory, wheel or sdist"):
        si.import_specs(bad)
    (tmp_path / "n").mkdir()
    nomap = make_wheel(tmp_path / "n", constants="X = 1\n")
    with pytest.raises(sb.SpecsImportError, match="MAP_REPO_VERSION_TO_SPECS"):
        si.import_specs(nomap)


def test_committed_table_has_known_entries_and_provenance():
    data = sb.load_specs()
    src = data["source"]
    assert src["package"] == "swebench" and src["version"].startswith("4.0.") and src["skipped_statements"] == []
    assert len(src["files"]["swebench/harness/constants/python.py"]) == 64
    sq = data["specs"]["sqlfluff/sqlfluff"]
    assert {"0.8", "0.10", "1.4", "2.2"} <= set(sq)
    assert sq["1.4"] == {"python": "3.9", "packages": "requirements.txt", "install": "python -m pip install -e .",
                         "test_cmd": "pytest -rA"}
    assert data["reqs_paths"]["sqlfluff/sqlfluff"] == ["requirements_dev.txt"]
    mm = data["specs"]["marshmallow-code/marshmallow"]["3.19"]
    assert mm["install"] == "python -m pip install -e '.[dev]'" and mm["python"] == "3.9"
    assert data["specs"]["pallets/flask"]["2.0"]["pip_packages"][0] == "setuptools==70.0.0"
    assert data["log_parsers"]["sqlfluff/sqlfluff"] == "parse_log_pytest"
    assert data["requirements_rules"]["replace"] == [["types-pkg_resources", "types-setuptools"]]
    lic = (sb.DEFAULT_SPECS.parent / sb.LICENSE_NAME).read_text()
    assert lic.startswith("MIT License")
    # no registry host names in the data file
    text = sb.DEFAULT_SPECS.read_text()
    for host in ("pypi" + ".org", "pythonhosted" + ".org", "github" + ".com"):
        assert host not in text


def test_spec_for_lookup():
    data = sb.load_specs()
    assert sb.spec_for(data, "sqlfluff/sqlfluff", "0.8")["python"] == "3.9"
    assert sb.spec_for(data, "sqlfluff/sqlfluff", "9.9") is None
    assert sb.spec_for(data, "nobody/nothing", "1.0") is None
    assert sb.spec_for(data, "sqlfluff/sqlfluff", None) is None


# ---------------------------------------------------------------- requirement gathering

RULES = {"exclude_prefixes": ["-e .", "#", ".[test"], "replace": [["types-pkg_resources", "types-setuptools"]]}


def test_gather_requirements_inlines_includes_first_and_drops_self_installs(tmp_path):
    tree = write(tmp_path, {
        "requirements/dev.txt": "# dev tools\n-r base.txt\npytest==7.1\n-e .\n.[test]\ntypes-pkg_resources==0.1\n",
        "requirements/base.txt": "click>=8\n# comment\n-e .\n",
    })
    text, used, read = sb.gather_requirements(tree, ["requirements_dev.txt", "requirements/dev.txt"], RULES)
    assert used == "requirements/dev.txt"
    assert set(read) == {"requirements/dev.txt", "requirements/base.txt"}
    lines = [x for x in text.split("\n") if x.strip()]
    assert lines == ["click>=8", "pytest==7.1", "types-setuptools"]  # include first, then own lines


def test_gather_requirements_first_existing_path_and_missing(tmp_path):
    tree = write(tmp_path, {"a.txt": "x\n", "b.txt": "y\n"})
    assert sb.gather_requirements(tree, ["b.txt", "a.txt"], RULES)[1] == "b.txt"
    with pytest.raises(RecipeError, match="none of the requirement files"):
        sb.gather_requirements(tree, ["nope.txt"], RULES)


# ---------------------------------------------------------------- conversion

@pytest.fixture
def table(tmp_path):
    data, _ = si.import_specs(make_wheel(tmp_path))
    return data


def foo_tree(tmp_path):
    return write(tmp_path / "tree", {"requirements_dev.txt": "-e .\npytest\nhypothesis==6.0\n",
                                     "setup.py": "from setuptools import setup\nsetup(name='foo')\n",
                                     "tests/test_a.py": "def test_a():\n    pass\n"})


def test_requirements_spec_becomes_ordered_install_steps(tmp_path, table):
    tree = foo_tree(tmp_path)
    recipe, inputs = sb.recipe_from_spec(table["specs"]["o/foo"]["2.0"], tree, repo="o/foo", version="2.0",
                                         available_pythons=("3.9", "3.11"), table=table)
    assert recipe["origin"] == "swebench-4.0.9" and recipe["sources"]["origin"] == "swebench-4.0.9"
    assert recipe["python"] == "3.11" and recipe["test_cmd"] == "pytest -rA" and recipe["runner"] == "pytest"
    names = [s["name"] for s in recipe["install"]]
    assert names == ["swebench-requirements:requirements_dev.txt", "swebench-pip-packages", "swebench-install",
                     "test-runner"]
    req = recipe["install"][0]["try"][0]
    assert "\n" not in req and "-e ." not in req
    assert req.endswith(f"pip install -r {sb.TEMP_REQS}")
    # the command writes exactly the gathered lines
    out = tmp_path / "reqs.txt"
    subprocess.run(["bash", "-c", req.split(" && pip install")[0].replace(sb.TEMP_REQS, str(out))], check=True)
    assert [x for x in out.read_text().split("\n") if x.strip()] == ["pytest", "hypothesis==6.0"]
    assert recipe["install"][1]["try"] == ["pip install b==2 a==1"]  # SWE-bench's order kept
    assert recipe["install"][2]["try"] == ["python -m pip install -e .",
                                           "python -m pip install --no-build-isolation -e ."]
    assert all(s["required"] for s in recipe["install"])
    assert set(inputs) == {"requirements_dev.txt", "setup.py"}
    assert recipe["test_paths"] == ["tests"]
    script = install_script(recipe)
    assert "hypothesis==6.0" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # valid bash


def test_explicit_package_list_pre_install_and_eval_exports(tmp_path, table):
    spec = {"python": "3.9", "packages": "numpy scipy", "pip_packages": ["pytest"],
            "install": "python setup.py install", "pre_install": ["sed -i 's/a/b/' setup.cfg"],
            "eval_commands": ["export LANG=en_US.UTF-8", "export LC_ALL='C.UTF-8'"], "test_cmd": "pytest -rA"}
    recipe, _ = sb.recipe_from_spec(spec, foo_tree(tmp_path), repo="o/x", version="1", available_pythons=("3.9",),
                                    table=table)
    assert [s["try"] for s in recipe["install"][:3]] == [["pip install numpy scipy"], ["pip install pytest"],
                                                         ["python setup.py install"]]
    assert recipe["sources"]["packages_via"].startswith("pip")
    assert recipe["pre_install"] == ["sed -i 's/a/b/' setup.cfg"]
    assert recipe["test_env"] == {"LANG": "en_US.UTF-8", "LC_ALL": "C.UTF-8"}
    script = test_script(recipe, "/tmp/j.xml", selection=["tests/test_a.py"])
    assert "export LANG=en_US.UTF-8" in script and "export LC_ALL=C.UTF-8" in script
    assert "exec pytest -rA $CRUCIBLE_PLUGINS -rpsxXEf --junitxml=/tmp/j.xml" in script and script.rstrip().endswith("tests/test_a.py")


@pytest.mark.parametrize("spec, match", [
    ({"python": "3.8", "packages": "environment.yml", "test_cmd": "pytest -rA"}, "conda environment.yml"),
    ({"python": "3.6", "install": "python -m pip install -e .", "test_cmd": "pytest -rA"},
     "Python 3.6.*base images only for 3.9, 3.11"),
    ({"python": "3.9", "test_cmd": "./tests/runtests.py --verbosity 2"}, "is not pytest"),
    ({"python": "3.9", "install": "python -m pip install -e ."}, "no test_cmd"),
    ({"python": "3.9", "test_cmd": "pytest", "eval_commands": ["locale-gen"]}, "needs root at test time"),
])
def test_unusable_specs_raise_recipe_error_naming_repo_and_version(tmp_path, table, spec, match):
    with pytest.raises(RecipeError, match=match) as ei:
        sb.recipe_from_spec(spec, foo_tree(tmp_path), repo="o/bar", version="0.1",
                            available_pythons=("3.9", "3.11"), table=table)
    assert "o/bar 0.1 (swebench-4.0.9)" in str(ei.value)


def test_conda_only_entry_of_the_table_is_an_error_not_another_python(tmp_path, table):
    with pytest.raises(RecipeError, match="environment.yml"):
        sb.recipe_for_instance("o/bar", "0.1", foo_tree(tmp_path), ("3.8", "3.9"), table=table)
    with pytest.raises(RecipeError, match="Python 3.8"):
        sb.recipe_from_spec({**table["specs"]["o/bar"]["0.1"], "packages": "pytest"}, foo_tree(tmp_path),
                            repo="o/bar", version="0.1", available_pythons=("3.9",), table=table)


def test_requirements_spec_without_file_is_an_error(tmp_path, table):
    tree = write(tmp_path / "t", {"setup.py": "", "tests/test_a.py": ""})
    with pytest.raises(RecipeError, match=r"o/foo 1.0 .*none of the requirement files"):
        sb.recipe_for_instance("o/foo", "1.0", tree, ("3.9",), table=table)


def test_uncovered_pairs_give_none(tmp_path, table):
    assert sb.recipe_for_instance("o/foo", "9.9", foo_tree(tmp_path), ("3.9",), table=table) is None
    assert sb.recipe_for_instance("o/other", "1.0", foo_tree(tmp_path), ("3.9",), table=table) is None
    assert sb.recipe_for_instance("o/foo", None, foo_tree(tmp_path), ("3.9",), table=table) is None


def test_env_key_changes_with_spec_requirements_and_origin(tmp_path, table):
    from crucible.sandbox.api import Settings, plan_env

    s = Settings()
    tree = foo_tree(tmp_path)

    def key(spec, tbl=table):
        rec = sb.recipe_from_spec(spec, tree, repo="o/foo", version="1.0", available_pythons=("3.9", "3.11"),
                                  table=tbl)
        return plan_env(s, tree, "foo", rec).key

    base = table["specs"]["o/foo"]["1.0"]
    k0 = key(base)
    assert key(dict(base)) == k0  # same spec, same key
    assert key({**base, "pip_packages": ["x==1"]}) != k0
    assert key({**base, "install": "python -m pip install ."}) != k0
    newer = json.loads(json.dumps(table))
    newer["source"]["version"] = "4.0.10"
    assert key(base, newer) != k0  # origin is part of the recipe
    (tree / "requirements_dev.txt").write_text("pytest==8\n")
    assert key(base) != k0  # requirement contents are part of the key
    inferred = plan_env(s, tree, "foo")
    assert inferred.recipe.get("origin") is None and inferred.key != k0


# ---------------------------------------------------------------- auto vs inferred in env_for

class FakeBuild:
    def __init__(self):
        self.calls = []

    def __call__(self, client, settings, tree, name, force=False, recipe=None, date=None):
        from crucible.sandbox.api import plan_env

        self.calls.append(recipe)
        return plan_env(settings, tree, name, recipe, date), {"cache_hit": False}


def dated_mirror(tmp_path, repo: str, files: dict, date: str) -> tuple[Path, str]:
    """A bare mirror ``tmp_path/mirrors/<repo>.git`` with one commit of ``files`` dated ``date``."""
    import os
    import subprocess

    src = write(tmp_path / "src", files)
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@x", "GIT_AUTHOR_DATE": f"{date}T10:00:00Z", "GIT_COMMITTER_DATE": f"{date}T10:00:00Z"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"]):
        subprocess.run(["git", *args], cwd=src, env=env, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True).stdout.strip()
    mirror = tmp_path / "mirrors" / f"{repo}.git"
    mirror.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(mirror)], check=True)
    return tmp_path / "mirrors", sha


def test_env_for_auto_uses_table_and_inferred_does_not(tmp_path, monkeypatch):
    import crucible.pipelines.swe.envs
    from crucible.pipelines.swe.envs import ValidateContext, env_for
    from crucible.sandbox.api import Settings

    files = {"requirements_dev.txt": "pytest\n", "setup.py": "", "test/a_test.py": "def test_a():\n    pass\n",
             "test/test_b.py": ""}
    tree = write(tmp_path / "t", files)
    mirrors, sha = dated_mirror(tmp_path, "sqlfluff/sqlfluff", files, "2021-06-01")
    fake = FakeBuild()
    monkeypatch.setattr(crucible.pipelines.swe.envs, "build_env", fake)  # where env_for calls it
    auto = ValidateContext(client=None, settings=Settings(), workdir=tmp_path / "w", mirror_root=mirrors)
    spec = env_for(auto, "sqlfluff/sqlfluff", sha, tree, "0.8")
    assert spec.recipe["origin"].startswith("swebench-4.0.") and spec.recipe["python"] == "3.9"
    assert env_for(auto, "sqlfluff/sqlfluff", sha, tree, "0.8") is spec and auto.stats["env_hits"] == 1
    other = env_for(auto, "sqlfluff/sqlfluff", sha, tree, "77.0")  # not in the table: inference
    assert "origin" not in other.recipe
    inferred = ValidateContext(client=None, settings=Settings(), workdir=tmp_path / "w", recipes="inferred",
                               mirror_root=mirrors)
    spec_i = env_for(inferred, "sqlfluff/sqlfluff", sha, tree, "0.8")
    assert "origin" not in spec_i.recipe and spec_i.key != spec.key
    assert fake.calls[0] is not None and fake.calls[1:] == [None, None]
    # inference resolves as of the env commit's date (a 2021 commit: older than sandbox.as_of_min_age_days)
    assert spec_i.recipe["as_of"] and spec_i.recipe["as_of"][:4] == "2021"
    today = ValidateContext(client=None, settings=Settings(as_of_min_age_days=0), workdir=tmp_path / "w",
                            recipes="inferred", mirror_root=mirrors)
    spec_t = env_for(today, "sqlfluff/sqlfluff", sha, tree, "0.8")
    assert spec_t.recipe.get("as_of") is None and spec_t.key != spec_i.key  # switched off: today's index
    bad = ValidateContext(client=None, settings=Settings(), workdir=tmp_path, recipes="bogus")
    with pytest.raises(ValueError, match="auto or inferred"):
        env_for(bad, "sqlfluff/sqlfluff", sha, tree, "0.8")


def test_env_date_commit_first_then_the_rows_created_at(tmp_path):
    from crucible.pipelines.swe.envs import ValidateContext, env_date
    from crucible.sandbox.api import Settings

    mirrors, sha = dated_mirror(tmp_path, "o/old", {"a.py": ""}, "2019-03-04")
    ctx = ValidateContext(client=None, settings=Settings(), workdir=tmp_path / "w", mirror_root=mirrors)
    assert env_date(ctx, "o/old", sha, "2022-01-01T00:00:00Z") == "2019-03-04"  # the commit's, not the PR's
    undated = tmp_path / "u"
    u_mirrors, u_sha = dated_mirror(undated, "o/new", {"a.py": ""}, "2000-01-01")  # sources.GIT_ENV's fixed date
    ctx_u = ValidateContext(client=None, settings=Settings(), workdir=tmp_path / "wu", mirror_root=u_mirrors)
    assert env_date(ctx_u, "o/new", u_sha, "2021-05-06T07:08:09Z") == "2021-05-06"
    assert env_date(ctx_u, "o/new", u_sha, None) is None


def test_validate_instance_reports_recipe_error_as_setup_reason(tmp_path, monkeypatch):
    """A covered (repo, version) whose spec cannot be honoured is an error row naming why (no fallback)."""
    from crucible.pipelines.swe import validate as v
    from crucible.sandbox.api import Settings

    tree = write(tmp_path / "base", {"setup.py": "", "tests/test_a.py": ""})
    monkeypatch.setattr(v, "checkout_tree", lambda ctx, repo, commit, dest: tree)
    ctx = v.ValidateContext(client=None, settings=Settings(), workdir=tmp_path)
    row = v.validate_instance(ctx, {"instance_id": "x", "repo": "pydata/xarray", "version": "0.12",
                                    "base_commit": "b", "patch": "", "test_patch": ""}, "run")
    assert (row["status"], row["failure_kind"], row["failed_at"]) == ("error", "infra", "setup")
    assert row["reason"].startswith("setup: RecipeError: pydata/xarray 0.12 (swebench-4.0.")
    assert "environment.yml" in row["reason"] or "Python 3.10" in row["reason"]


def test_cli_import_specs_writes_file(tmp_path):
    from crucible.pipelines.commands import swe_cmd

    out = tmp_path / "o" / "specs.json"
    rc = swe_cmd._import_specs(SimpleNamespace(source=str(make_wheel(tmp_path)), out=str(out)))
    assert rc == 0 and json.loads(out.read_text())["source"]["version"] == "4.0.9"
    assert swe_cmd._import_specs(SimpleNamespace(source=str(tmp_path / "missing.whl"), out=str(out))) == 2


# ---------------------------------------------------------------- SWE-bench's parser variants

def test_options_parser_normalises_path_parametrization_like_swebench():
    from crucible.sandbox.parsers import get_parser

    log = "\n".join([
        "PASSED tests/test_a.py::test_x[/usr/lib/python3/foo.py]",
        "PASSED tests/test_a.py::test_y[//double/slash]",
        "FAILED tests/test_a.py::test_z[plain] - AssertionError: boom",
        "PASSED tests/test_a.py::test_glob[/a/*/b]",
        "XFAIL tests/test_a.py::test_w - reason",
    ])
    got = get_parser("pytest_rA_options")(log)
    assert got == {"tests/test_a.py::test_x[/foo.py]": "PASSED", "tests/test_a.py::test_y[//double/slash]": "PASSED",
                   "tests/test_a.py::test_z[plain]": "FAILED", "tests/test_a.py::test_glob[/a/*/b]": "PASSED",
                   "tests/test_a.py::test_w": "XFAIL"}
    assert get_parser("pytest_rA")(log)["tests/test_a.py::test_x[/usr/lib/python3/foo.py]"] == "PASSED"


def test_v2_parser_strips_colour_and_reads_verbose_lines():
    from crucible.sandbox.parsers import get_parser

    log = "\n".join([
        "\x1b[32mPASSED\x1b[0m astropy/io/tests/test_a.py::test_one",
        "astropy/io/tests/test_a.py::test_two FAILED",
        "astropy/io/tests/test_a.py::test_three PASSED",
        "FAILED astropy/io/tests/test_a.py::test_four - ValueError",
    ])
    assert get_parser("pytest_rA_v2")(log) == {
        "astropy/io/tests/test_a.py::test_one": "PASSED", "astropy/io/tests/test_a.py::test_two": "FAILED",
        "astropy/io/tests/test_a.py::test_three": "PASSED", "astropy/io/tests/test_a.py::test_four": "FAILED"}


def test_recipe_carries_the_repos_parser_and_rejects_unsupported_ones(tmp_path):
    data = sb.load_specs()
    tree = write(tmp_path / "t", {"setup.py": "", "tests/test_a.py": ""})
    req, _ = sb.recipe_for_instance("psf/requests", "2.27", tree, ("3.9", "3.11"), table=data)
    assert req["log_parser"] == "pytest_rA_options" and req["sources"]["log_parser"] == "parse_log_pytest_options"
    assert [s["try"][0] for s in req["install"][:2]] == ["pip install pytest", "python -m pip install ."]
    mm, _ = sb.recipe_for_instance("marshmallow-code/marshmallow", "3.19", tree, ("3.9",), table=data)
    assert mm["log_parser"] == "pytest_rA"
    assert mm["install"][0]["try"] == ["python -m pip install -e '.[dev]'",
                                       "python -m pip install --no-build-isolation -e '.[dev]'"]
    with pytest.raises(RecipeError, match="parse_log_seaborn"):
        sb.recipe_for_instance("mwaskom/seaborn", "0.12", tree, ("3.9",), table=data)
    with pytest.raises(RecipeError, match="is not pytest"):
        sb.recipe_for_instance("sympy/sympy", "1.1", tree, ("3.9",), table=data)


def test_setuptools_scm_tree_without_git_gets_the_rows_version_and_build_backend(tmp_path):
    data = sb.load_specs()
    files = {"pyproject.toml": '[build-system]\nrequires = ["setuptools>=45", "setuptools_scm[toml]>=6.2"]\n'
                               '[tool.setuptools_scm]\nwrite_to = "src/_pytest/_version.py"\n',
             "setup.py": "", "testing/test_a.py": ""}
    tree = write(tmp_path / "git", files)
    rec, _ = sb.recipe_for_instance("pytest-dev/pytest", "5.4", tree, ("3.9",), table=data)
    assert rec["reinstall"] is True
    names = [s["name"] for s in rec["install"]]
    assert names == ["swebench-pip-packages", "build-requires", "swebench-install", "test-runner"]
    assert rec["install"][1]["try"] == ["pip install 'setuptools>=45' 'setuptools_scm[toml]>=6.2'"]
    assert rec["install"][2]["try"][0] == "export SETUPTOOLS_SCM_PRETEND_VERSION=5.4.0; python -m pip install -e ."
    assert rec["test_env"] == {"SETUPTOOLS_SCM_PRETEND_VERSION": "5.4.0"}
    script = test_script(rec, "/tmp/j.xml")
    assert script.index("export SETUPTOOLS_SCM_PRETEND_VERSION=5.4.0") < script.index("pip install -q --no-deps")
    sdist = write(tmp_path / "sdist", {**files, "PKG-INFO": "Version: 5.4.3\n"})
    rec2, _ = sb.recipe_for_instance("pytest-dev/pytest", "5.4", sdist, ("3.9",), table=data)
    assert rec2["test_env"] == {} and rec2["install"][2]["try"][0] == "python -m pip install -e ."


def test_inferred_envs_of_covered_repos_write_swebench_ids():
    """Test ids are a convention of the labels: an inferred recipe for psf/requests parses with requests'
    parser (path parametrizations cut to the last component, as SWE-bench's labels have them); the image
    (key) is untouched. Other repos, junit ids and recipes that name a parser keep theirs."""
    from types import SimpleNamespace

    from crucible.pipelines.swe.envs import ValidateContext, env_of
    from crucible.sandbox.api import Settings

    spec = SimpleNamespace(image="img:1", recipe={"test_cmd": "python -m pytest"})
    ctx = ValidateContext(client=None, settings=Settings(), workdir=Path("/tmp"), recipes="inferred")
    assert env_of(ctx, "psf/requests", spec).parser == "pytest_rA_options"
    assert env_of(ctx, "psf/requests", spec).image == "img:1" and "log_parser" not in spec.recipe
    assert env_of(ctx, "pypi/requests", spec).parser == "pytest_rA"
    junit = ValidateContext(client=None, settings=Settings(), workdir=Path("/tmp"), id_style="junit")
    assert "log_parser" not in env_of(junit, "psf/requests", spec).recipe
    named = SimpleNamespace(image="img:2", recipe={"test_cmd": "pytest", "log_parser": "pytest_rA_v2"})
    assert env_of(ctx, "psf/requests", named).parser == "pytest_rA_v2"
