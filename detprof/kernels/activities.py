"""What every trace reader shares: the timed activities it returns, its error, the JSON loader
and the launch rule of the ``steps`` scope. The Chrome-trace reader (``trace``), its fast scan
(``kineto_scan``) and the TensorFlow decoder (``xplane``) all build on this module and on nothing
of each other's, so none of them imports another in a circle."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from detprof.errors import DetprofError

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["name", "cat", "ts_us", "dur_us"]


class TraceError(DetprofError, ValueError):
    """Raised for a file that is not a readable Chrome trace, or one with nothing to measure."""


@dataclass(frozen=True)
class TraceActivities:
    """Timed activities of one trace, as parallel lists: ``names``, ``cats``, ``ts_us`` (start) and
    ``dur_us`` (duration; self time for CPU ops), in µs; ``events`` gives them as a DataFrame.

    ``source`` is the file it came from; ``parser`` which reader produced it: ``kineto-scan`` (the
    fast scan of Kineto's layout) or ``json`` (the whole document parsed)."""

    kind: str  # "gpu" or "cpu"
    names: list[str]
    cats: list[str]
    ts_us: list[float]
    dur_us: list[float]
    device_name: str | None
    source: str
    parser: str = "json"

    @cached_property
    def events(self) -> pd.DataFrame:
        """The activities as a DataFrame with columns name, cat, ts_us, dur_us."""
        import pandas as pd

        return pd.DataFrame({"name": self.names, "cat": self.cats, "ts_us": self.ts_us, "dur_us": self.dur_us},
                            columns=COLUMNS)


def _json_loader() -> Callable[[bytes], Any]:
    """orjson when installed (faster on large traces), else the standard library."""
    try:
        import orjson

        return orjson.loads  # type: ignore[no-any-return]
    except ImportError:
        return json.loads


loads_json = _json_loader()


def launched_in_steps(gpu_correlations: Sequence[Hashable], launches: Iterable[tuple[Hashable, float]],
                      step_end: float | None) -> list[bool] | None:
    """Which GPU events fall in the ``steps`` scope.

    ``launches`` are (correlation, start µs) of CPU events that carry a correlation; ``step_end``
    is where the traced iterations end (µs). Correlations may be any hashable spelling (ints, or
    their digits as bytes) as long as both sides use the same one. Returns None when everything
    is in scope.
    """
    if step_end is None:
        return None
    launched = {correlation for correlation, start in launches if start <= step_end}
    return [c in launched for c in gpu_correlations]
