"""Docker sandboxes: engines, content-addressed images, recipes, containers and trustworthy test runs.

Knows nothing of SWE tasks; every function that needs Docker takes a client argument.
"""
