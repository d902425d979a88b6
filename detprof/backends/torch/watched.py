"""What a watched interpreter of check --script is told (detprof.backends.torch.script): the run's
ScriptSideSpec, and the plumbing the backend adds to it, as one typed record read back whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detprof.check.spec import ScriptSideSpec, SpecError


@dataclass(frozen=True)
class WatchedRun:
    """One watched run: the spec, the mode's toggles (None: the script's own switches), where to
    write the final state and a recorded step's ops, the descriptor the records go through, and
    the secret every record carries."""

    spec: ScriptSideSpec
    toggles: dict[str, Any] | None
    state: str
    ops: str
    records_fd: int
    secret: str

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON-able dict (the spec as its own)."""
        return {"spec": self.spec.to_json(), "toggles": self.toggles, "state": self.state, "ops": self.ops,
                "records_fd": self.records_fd, "secret": self.secret}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatchedRun:
        """The run ``to_json`` wrote; SpecError naming any field it does not have."""
        unknown = sorted(set(data) - {"spec", "toggles", "state", "ops", "records_fd", "secret"})
        if unknown:
            raise SpecError(f"watched run: unknown field(s) {', '.join(unknown)}")
        return cls(**{**data, "spec": ScriptSideSpec.from_json(data["spec"])})
