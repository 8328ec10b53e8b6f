"""What a trial on Ray sends back through its job log: its output, its metrics, its run folder.

A Ray job's log is the one channel a job-submission address gives both ways, so the
remote side prints three kinds of marked lines among the script's own output:
``@@layerflow:metrics {json}`` per epoch, and the run folder's archive in base64 lines
between ``@@layerflow:archive-begin {json}`` and ``@@layerflow:archive-end``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any, TextIO

from layerflow.runs.files import parse_metric_lines

PREFIX = "@@layerflow:"
_CHUNK = 16_384


def metrics_line(epoch: dict[str, Any]) -> str:
    return f"{PREFIX}metrics {json.dumps(epoch, allow_nan=True)}"


def write_archive(stream: TextIO, run_id: str, data: bytes) -> None:
    """Prints the archive of a run folder as marked lines."""
    header = {"run_id": run_id, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    stream.write(f"{PREFIX}archive-begin {json.dumps(header)}\n")
    text = base64.b64encode(data).decode()
    for start in range(0, len(text), _CHUNK):
        stream.write(f"{PREFIX}archive {text[start : start + _CHUNK]}\n")
    stream.write(f"{PREFIX}archive-end\n")
    stream.flush()


class JobLogDecoder:
    """Splits a job's log, fed in chunks, into output lines, metrics and the run archive.

    Args:
        on_output: called with each line of the script's own output (without newline).
        on_metrics: called with each epoch's metrics.
    """

    def __init__(self, on_output: Callable[[str], None], on_metrics: Callable[[dict[str, Any]], None]):
        self.on_output, self.on_metrics = on_output, on_metrics
        self.archive: bytes | None = None
        self.archive_problem: str | None = None
        self._partial = ""
        self._header: dict[str, Any] | None = None
        self._parts: list[str] = []

    def feed(self, chunk: str) -> None:
        text = self._partial + chunk
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        if self._header is not None and self.archive is None:
            self.archive_problem = "the log ended in the middle of the run folder's archive"

    def _line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.startswith(PREFIX):
            self.on_output(line)
            return
        kind, _, payload = line[len(PREFIX) :].partition(" ")
        if kind == "metrics":
            for epoch in parse_metric_lines([payload])[0]:
                self.on_metrics(epoch)
        elif kind == "archive-begin":
            self._header, self._parts = json.loads(payload), []
        elif kind == "archive" and self._header is not None:
            self._parts.append(payload)
        elif kind == "archive-end" and self._header is not None:
            data = base64.b64decode("".join(self._parts))
            if len(data) != self._header["bytes"] or hashlib.sha256(data).hexdigest() != self._header["sha256"]:
                self.archive_problem = "the run folder's archive arrived damaged (size or checksum differ)"
            else:
                self.archive = data
            self._header, self._parts = None, []


def output_only(log: str) -> str:
    """A job log without the marked lines (what ``layerflow cloud logs`` shows)."""
    return "".join(line for line in log.splitlines(keepends=True) if not line.startswith(PREFIX))
