"""Trials as Ray jobs: the tuner's thin client of ``layerflow.cloud``'s per-run API."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerflow.cloud import ClusterError, RayCluster, RemoteRun
from layerflow.tuning.trial import EpochCallback, Trial


class RayTrials:
    """Each trial is a ``RemoteRun`` on one cluster, ``parallel`` of them at a time (threads of the tuner)."""

    name = "ray"

    def __init__(
        self,
        address: str | None,
        script: Path,
        runs_dir: Path,
        args: Sequence[str] = (),
        command_line_flags: Mapping[str, str] | None = None,
        cpus: float = 1,
        gpus: float = 0,
        requirements: str | os.PathLike[str] | None = None,
    ):
        self.cluster = RayCluster.connect(address)
        self.script, self.runs_dir, self.args = Path(script), runs_dir, list(args)
        self.command_line_flags = dict(command_line_flags or {})
        self.cpus, self.gpus, self.requirements = cpus, gpus, requirements

    def run(self, trial: Trial, properties: Mapping[str, Any], on_epoch: EpochCallback) -> dict[str, Any]:
        run = RemoteRun.submit(
            self.cluster,
            self.script,
            flags=trial.flags,
            properties=properties,
            runs_dir=self.runs_dir,
            args=self.args,
            command_line_flags=self.command_line_flags,
            cpus=self.cpus,
            gpus=self.gpus,
            requirements=self.requirements,
            limit_threads=True,
        )
        trial.run_id, trial.handle = run.run_id, run

        def on_metrics(epoch: dict[str, Any]) -> None:
            reason = on_epoch(trial, epoch)
            if reason:
                self.stop(trial, "stopped", reason)

        return run.follow(on_metrics=on_metrics)

    def stop(self, trial: Trial, status: str, reason: str) -> None:
        if isinstance(trial.handle, RemoteRun):
            try:
                trial.handle.cancel(status, reason)
            except ClusterError as error:  # the follow loop reports a lost cluster
                print(error, file=sys.stderr)

    def close(self) -> None:
        self.cluster.close()
