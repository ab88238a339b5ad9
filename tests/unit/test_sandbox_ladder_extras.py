"""A missing module that a declared extra requires: the extra's rung before the module's (crucible.sandbox.ladder_extras,
crucible.sandbox.ladder.candidates), on marshmallow 2.19.5's own setup.py (its EXTRAS_REQUIRE, verbatim in part)."""

from crucible.sandbox.ladder import Phase, RungKind, apply_rung, candidates
from crucible.sandbox.ladder_extras import extra_providing, extra_requirements

MARSHMALLOW_2_19 = """from setuptools import setup, find_packages

EXTRAS_REQUIRE = {
    'reco': ['python-dateutil', 'simplejson'],
    'tests': [
        'pytest',
        'pytz',
    ],
    'lint': [
        'flake8==3.7.4',
    ],
}
EXTRAS_REQUIRE['dev'] = (
    EXTRAS_REQUIRE['reco'] +
    EXTRAS_REQUIRE['tests'] +
    EXTRAS_REQUIRE['lint'] +
    ['tox']
)
setup(name='marshmallow', extras_require=EXTRAS_REQUIRE)
"""
LINE = "E   ModuleNotFoundError: No module named 'simplejson'"


def recipe(extra="tests"):
    return {"python": "3.9", "test_cmd": "python -m pytest", "sources": {"extra": extra},
            "install": [{"name": "requirements", "try": ["true"]}, {"name": f"package[{extra}]", "try": ["x"]},
                        {"name": "test-runner", "try": ["y"]}]}


def test_extras_are_read_from_setup_py_setup_cfg_and_pyproject(tmp_path):
    (tmp_path / "setup.py").write_text(MARSHMALLOW_2_19)
    assert extra_requirements(tmp_path) == {"reco": ["python-dateutil", "simplejson"], "tests": ["pytest", "pytz"],
                                            "lint": ["flake8"]}
    (tmp_path / "setup.py").write_text("setup(")  # unparsable: nothing from it
    (tmp_path / "setup.cfg").write_text("[options.extras_require]\nyaml =\n    PyYAML>=5\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.optional-dependencies]\n'
                                             'fast = ["ujson; python_version < \\"4\\""]\n')
    assert extra_requirements(tmp_path) == {"fast": ["ujson"], "yaml": ["pyyaml"]}


def test_the_smallest_other_extra_that_requires_the_distribution():
    extras = {"dev": ["python-dateutil", "simplejson", "pytest"], "reco": ["python-dateutil", "simplejson"]}
    assert extra_providing("simplejson", extras, "tests") == "reco"
    assert extra_providing("SimpleJSON", extras, "reco") == "dev"  # the installed one is no rung
    assert extra_providing("pillow", extras, None) is None


def test_a_module_of_a_declared_extra_gets_the_extras_rung_first(tmp_path):
    (tmp_path / "setup.py").write_text(MARSHMALLOW_2_19)
    rungs = candidates([LINE], Phase.TEST, recipe(), extras=extra_requirements(tmp_path))
    assert [(r.kind, r.arg) for r in rungs] == [(RungKind.INSTALL_EXTRA, "reco"),
                                                (RungKind.INSTALL_MODULE, "simplejson")]
    assert rungs[0].trigger == LINE
    applied = apply_rung(recipe(), rungs[0])
    assert [s["name"] for s in applied["install"]] == ["requirements", "package[tests]", "ladder:extra:reco",
                                                       "test-runner"]
    assert applied["install"][2]["try"] == ["pip install -e '.[reco]'",
                                            "pip install --no-build-isolation -e '.[reco]'"]
    assert applied["rungs"][-1]["kind"] == "install_extra"


def test_switched_off_without_extras_the_module_alone():
    rungs = candidates([LINE], Phase.TEST, recipe())
    assert [(r.kind, r.arg) for r in rungs] == [(RungKind.INSTALL_MODULE, "simplejson")]
