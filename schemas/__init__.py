"""JSON Schemas: the single definition of every record type Crucible stores.

Loaded through ``pipelines.store.records``; this package only ships the files.
"""
