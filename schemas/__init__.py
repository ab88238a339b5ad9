"""JSON Schemas: the single definition of every record type Crucible stores, and of every input row
format it reads (``kg_entity``, ``kg_triple``, ``judge_row``, ``swebench_row``, ``swe_prediction``:
checked by ``crucible.pipelines.rowcheck``).

Loaded through ``crucible.pipelines.store.records``; this package only ships the files.
"""

# The folder installs as crucible.schemas (setup.py); importing it under a second name would load every module twice.
if __name__ != "crucible.schemas":
    raise ImportError(f"import crucible.schemas, not {__name__}: the folder schemas/ is the package "
                      "crucible.schemas (install the project: make venv)")
