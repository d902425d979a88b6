"""Kernels: traces -> per-kernel tables with categories from kernels_db/, and diffs between modes."""

from detprof.kernels.catalog import CATEGORIES, KernelCatalog, load_catalog, parse_catalog
from detprof.kernels.names import short_name, signature
from detprof.kernels.table import category_table, diff_tables, kernel_table, top_kernels
from detprof.kernels.trace import (
    SCOPES,
    KernelLessGpuTraceError,
    TraceActivities,
    TraceError,
    load_trace,
    read_trace_json,
)

__all__ = ["CATEGORIES", "SCOPES", "KernelCatalog", "KernelLessGpuTraceError", "TraceActivities", "TraceError",
           "category_table", "diff_tables", "kernel_table", "load_catalog", "load_trace", "parse_catalog",
           "read_trace_json", "short_name", "signature", "top_kernels"]
