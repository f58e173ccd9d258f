"""Fixtures for the dashboard tests. The helpers live in dash_helpers.py: several test folders have a
conftest.py, so `from conftest import ...` would pick whichever was imported last."""
from dash_helpers import chromium, dashboard, publisher  # noqa: F401  (fixtures)
