"""Docker sandboxes: engines, content-addressed images, recipes, containers and trustworthy test runs.

Knows nothing of SWE tasks; every function that needs Docker takes a client argument.
"""

# The folder installs as crucible.sandbox (setup.py); importing it under a second name would load every module twice.
if __name__ != "crucible.sandbox":
    raise ImportError(f"import crucible.sandbox, not {__name__}: the folder sandbox/ is the package "
                      "crucible.sandbox (install the project: make venv)")
