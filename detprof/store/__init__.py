"""Store: the SQLite results database (runs, jobs, steps, kernels)."""

from detprof.store.db import ResultStore, StoreLike, open_store
from detprof.store.errors import StoreError, StoreLockedError
from detprof.store.paths import DB_ENV_VAR, resolve_db_path
from detprof.store.schema import SCHEMA_VERSION


def ensure_store(db: StoreLike = None) -> None:
    """Open (creating it if missing) and close the database ``db``, so that a path that can never be
    a store is refused (StoreError, one line) before a measurement starts."""
    if isinstance(db, ResultStore):
        return
    ResultStore(db, create=True).close()


__all__ = ["DB_ENV_VAR", "SCHEMA_VERSION", "ResultStore", "StoreError", "StoreLike", "StoreLockedError", "ensure_store",
           "open_store", "resolve_db_path"]
