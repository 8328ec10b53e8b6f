"""The command a Ray job runs on the cluster: one tracked run, sent back through the job log.

``python -m layerflow.cloud.remote_entry '<json>'`` with the script (relative to the job's
working directory, the packaged script folder), the run id chosen by the driver, flags
and properties. The run is recorded in a temporary runs dir on the cluster; its output
and metrics are printed as they come and its folder, once it ends, as an archive. The
driver on the user's machine files it; nothing on the cluster keeps it.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
import threading

from layerflow.cloud.job_log import metrics_line, write_archive
from layerflow.runs import files as f
from layerflow.runs.archive import pack_run
from layerflow.runs.follow import FileFollower
from layerflow.runs.training_run import RunControl, training_run

_POLL_SECONDS = 0.2


def _relay(control: RunControl, finished: threading.Event) -> None:
    """Prints the run's output lines and metrics (one thread, so lines never interleave)."""
    control.started.wait()
    run_dir = control.run_dir
    assert run_dir is not None, "a started run has its folder"
    output = FileFollower(run_dir / f.OUTPUT_FILE)
    metrics = FileFollower(run_dir / f.METRICS_FILE)
    while True:
        done = finished.wait(_POLL_SECONDS)
        lines = output.new_lines()
        if done:
            rest = output.rest()
            lines += [rest] if rest else []
        for line in lines:
            print(line)
        for epoch in f.parse_metric_lines(metrics.new_lines())[0]:
            print(metrics_line(epoch))
        sys.stdout.flush()
        if done:
            return


def main(argv: list[str]) -> int:
    payload = json.loads(argv[0])
    runs_dir = tempfile.mkdtemp(prefix="layerflow-remote-runs-")
    control = RunControl()
    signal.signal(signal.SIGTERM, lambda *_: control.stop("interrupted", "the Ray job was stopped"))
    finished = threading.Event()
    relay = threading.Thread(target=_relay, args=(control, finished), daemon=True)
    relay.start()
    try:
        record = training_run(
            payload["script"],
            flags=payload.get("flags") or {},
            runs_dir=runs_dir,
            args=payload.get("args") or [],
            command_line_flags=payload.get("command_line_flags"),
            properties=payload.get("properties"),
            echo=False,
            run_id=payload["run_id"],
            control=control,
        )
    except KeyboardInterrupt:
        record = {"id": payload["run_id"], "status": "interrupted", "path": f"{runs_dir}/{payload['run_id']}"}
    finally:
        finished.set()
        relay.join()
    try:
        write_archive(sys.stdout, record["id"], pack_run(record["path"]))
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    return 0 if record["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
