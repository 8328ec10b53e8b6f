"""One trial of a tuning run and the interface every transport (local processes, Ray) offers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Called with a trial and each epoch's metrics line as it arrives; returns why the
# trial should stop early, or None to let it go on.
EpochCallback = Callable[["Trial", Mapping[str, Any]], "str | None"]


@dataclass
class Trial:
    """A trial: its number in the tuning run, its flag values and, once run, its run."""

    number: int
    flags: dict[str, Any]
    run_id: str | None = None
    status: str = "pending"
    error: str | None = None
    handle: Any = field(default=None, repr=False)


class Transport(Protocol):
    """Runs trials as tracked runs filed in the local runs dir."""

    name: str

    def run(self, trial: Trial, properties: Mapping[str, Any], on_epoch: EpochCallback) -> dict[str, Any]:
        """Runs the trial to its end (in the calling thread); returns its run record."""

    def stop(self, trial: Trial, status: str, reason: str) -> None:
        """Stops a running trial; it is recorded with ``status`` (stopped or interrupted)."""

    def close(self) -> None:
        """Releases what the transport started (a local Ray cluster)."""
