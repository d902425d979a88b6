"""Determinism in continuous integration: the tax gate (detprof.ci.tax) and the pytest plugin
(detprof.ci.pytest_plugin) that checks, records and compares against golden records there."""
