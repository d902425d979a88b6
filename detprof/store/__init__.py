"""Store: the SQLite results database (runs, jobs, steps, kernels)."""

from detprof.store.db import (
    DB_ENV_VAR,
    SCHEMA_VERSION,
    ResultStore,
    StoreError,
    StoreLike,
    StoreLockedError,
    open_store,
    resolve_db_path,
)

__all__ = ["DB_ENV_VAR", "SCHEMA_VERSION", "ResultStore", "StoreError", "StoreLike", "StoreLockedError", "open_store",
           "resolve_db_path"]
