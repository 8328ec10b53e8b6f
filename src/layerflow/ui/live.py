"""Server-sent events of a run in progress: new metrics.jsonl lines and output.log bytes, then its end.

Each event carries only what was appended since the offsets the page was rendered with
(or the last event's id, when the browser reconnects), so a long run costs the same per
event as a short one.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.record import read_record
from layerflow.runs.report import clean_console_text
from layerflow.ui.run_files import read_new_metric_lines

POLL_SECONDS = 0.2
STATUS_EVERY_SECONDS = 1.0
MAX_LOG_CHUNK = 256 * 1024


def parse_event_id(text: str | None) -> tuple[int, int] | None:
    """``"<metrics offset>:<log offset>"`` (an event id) as two offsets, None if malformed."""
    try:
        metrics, log = (int(part) for part in (text or "").split(":"))
    except ValueError:
        return None
    return (metrics, log) if metrics >= 0 and log >= 0 else None


async def run_events(
    run_dir: Path, metrics_offset: int, log_offset: int, is_disconnected
) -> AsyncIterator[dict[str, Any]]:
    """Yields SSE events (``metrics``, ``output``, ``status``) until the run ends or the client leaves.

    Args:
        run_dir: the run's folder.
        metrics_offset: bytes of metrics.jsonl the page already has.
        log_offset: bytes of output.log the page already has.
        is_disconnected: an async callable telling whether the browser left.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    metrics_path, log_path = run_dir / f.METRICS_FILE, run_dir / f.OUTPUT_FILE
    loop = asyncio.get_running_loop()
    last_status_check = 0.0
    while True:
        sent = False
        epochs, new_offset = read_new_metric_lines(metrics_path, metrics_offset)
        if new_offset != metrics_offset:
            metrics_offset = new_offset
            if epochs:
                yield {
                    "event": "metrics",
                    "id": f"{metrics_offset}:{log_offset}",
                    "data": json.dumps(epochs, default=str),
                }
                sent = True
        text, log_offset = _read_log(log_path, log_offset, decoder)
        if text:
            yield {"event": "output", "id": f"{metrics_offset}:{log_offset}", "data": json.dumps(text)}
            sent = True
        now = loop.time()
        if now - last_status_check >= STATUS_EVERY_SECONDS:
            last_status_check = now
            record = await asyncio.to_thread(read_record, run_dir)
            if record.get("status") != "running":
                # Whatever the script wrote after the last poll, then the end.
                epochs, metrics_offset = read_new_metric_lines(metrics_path, metrics_offset)
                if epochs:
                    yield {"event": "metrics", "data": json.dumps(epochs, default=str)}
                text, log_offset = _read_log(log_path, log_offset, decoder)
                if text:
                    yield {"event": "output", "data": json.dumps(text)}
                yield {
                    "event": "status",
                    "id": f"{metrics_offset}:{log_offset}",
                    "data": json.dumps(
                        {k: record.get(k) for k in ("status", "end", "error", "metrics", "evaluation")}, default=str
                    ),
                }
                return
        if await is_disconnected():
            return
        if not sent:
            await asyncio.sleep(POLL_SECONDS)


def _read_log(path: Path, offset: int, decoder) -> tuple[str, int]:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return "", offset
    if size <= offset:
        return "", offset
    with open(path, "rb") as stream:
        stream.seek(offset)
        data = stream.read(min(size - offset, MAX_LOG_CHUNK))
    return clean_console_text(decoder.decode(data)), offset + len(data)
