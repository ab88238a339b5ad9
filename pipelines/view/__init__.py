"""``crucible view``: browse the store's rows in a local web page (see ``server.py``)."""
