"""Kernels: traces -> per-kernel tables with categories from kernels_db/, and diffs between modes."""

from detprof.kernels.catalog import CATEGORIES, KernelCatalog, load_catalog, parse_catalog
from detprof.kernels.table import category_table, diff_tables, kernel_table, short_name, top_kernels
from detprof.kernels.trace import TraceActivities, TraceError, load_trace

__all__ = ["CATEGORIES", "KernelCatalog", "TraceActivities", "TraceError", "category_table", "diff_tables",
           "kernel_table", "load_catalog", "load_trace", "parse_catalog", "short_name", "top_kernels"]
