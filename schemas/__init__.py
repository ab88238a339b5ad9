"""JSON Schemas: the single definition of every record type Crucible stores, and of every input row
format it reads (``kg_entity``, ``kg_triple``, ``judge_row``, ``swebench_row``, ``swe_prediction``:
checked by ``pipelines.rowcheck``).

Loaded through ``pipelines.store.records``; this package only ships the files.
"""
