"""Knowledge graph: sources -> typed triples (Parquet), chain counting, formalization executor."""
