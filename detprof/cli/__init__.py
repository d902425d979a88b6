"""The ``detprof`` command line: one small module per group of commands, each parsing its options,
calling one function of the Python API and emitting the document it returns (``--json``, or the
renderers of detprof.render). Nothing else lives here.

Every command takes ``--json`` (one JSON document on stdout, nothing else there); a user mistake
exits 2 with one line on stderr.
"""

from detprof.cli import (  # noqa: F401 (commands)
    check,
    infer,
    inventory,
    kernels,
    overhead,
    records,
    report,
    stability,
    store,
    sweep,
)
from detprof.cli.app import app
from detprof.cli.common import USER_ERRORS, user_errors

__all__ = ["USER_ERRORS", "app", "user_errors"]
