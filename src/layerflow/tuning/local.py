"""Trials as tracked runs in local processes, several at a time."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.follow import FileFollower
from layerflow.runs.threads import thread_limits
from layerflow.runs.training_run import RunControl, training_run
from layerflow.tuning.trial import EpochCallback, Trial

_POLL_SECONDS = 0.25


class LocalProcesses:
    """The default transport: each trial is ``lf.training_run`` in a subprocess of this machine."""

    name = "local"

    def __init__(
        self,
        script: Path,
        runs_dir: Path | None,
        args: Sequence[str] = (),
        command_line_flags: Mapping[str, str] | None = None,
        parallel: int = 1,
    ):
        self.script, self.runs_dir = script, runs_dir
        self.args, self.command_line_flags = list(args), dict(command_line_flags or {})
        self.env = thread_limits(parallel)
        self.keep_outputs = parallel == 1  # trials sharing the working directory cannot tell their files apart

    def run(self, trial: Trial, properties: Mapping[str, Any], on_epoch: EpochCallback) -> dict[str, Any]:
        control = RunControl()
        trial.handle = control
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch_metrics,
            args=(trial, control, on_epoch, finished),
            daemon=True,
            name=f"trial-{trial.number}-metrics",
        )
        watcher.start()
        try:
            return training_run(
                self.script,
                flags=trial.flags,
                runs_dir=self.runs_dir,
                args=self.args,
                command_line_flags=self.command_line_flags,
                properties=properties,
                echo=False,
                control=control,
                env=self.env,
                keep_outputs=self.keep_outputs,
            )
        finally:
            finished.set()
            watcher.join()

    @staticmethod
    def _watch_metrics(trial: Trial, control: RunControl, on_epoch: EpochCallback, finished: threading.Event) -> None:
        while not control.started.wait(_POLL_SECONDS):
            if finished.is_set():
                return
        trial.run_id = control.run_id
        assert control.run_dir is not None, "training_run sets control.run_dir before it sets control.started"
        follower = FileFollower(control.run_dir / f.METRICS_FILE)
        while True:
            done = finished.wait(_POLL_SECONDS)
            for epoch in f.parse_metric_lines(follower.new_lines())[0]:
                reason = on_epoch(trial, epoch)
                if reason and not done:
                    control.stop("stopped", reason)
            if done:
                return

    def stop(self, trial: Trial, status: str, reason: str) -> None:
        if isinstance(trial.handle, RunControl):
            trial.handle.stop(status, reason)

    def close(self) -> None:
        pass
