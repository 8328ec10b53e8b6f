"""One tracked run as a Ray job: ``submit``, ``follow``, ``collect``, ``cancel``.

A run submitted to Ray gets its local folder at once, through the run store (status
``running``, with the cluster address and job id under ``remote``). Following the job
appends its output and metrics to that folder as they arrive; when the job ends, the run
folder it sent back through its log is filed in place of them. Only this process writes
the local runs folder; nothing on the cluster keeps the run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from layerflow.cloud.cluster import TERMINAL_STATUSES, ClusterError, RayCluster, read_requirements
from layerflow.cloud.job_log import JobLogDecoder
from layerflow.runs import files as f
from layerflow.runs.index import INDEX_FILE
from layerflow.runs.store import RunNotFoundError, RunStore
from layerflow.runs.threads import thread_limits

TRANSPORT = "ray-job"


def _ignore(_: Any) -> None:
    return None


def runs_dirs_inside(folder: Path, store: RunStore) -> list[str]:
    """Runs folders inside the script's folder (this store's and any holding an index), as
    upload excludes: runs stay on this machine."""
    folder = folder.resolve()
    found = {path.parent for path in folder.glob(f"*/{INDEX_FILE}")}
    if store.path.resolve().is_relative_to(folder):
        found.add(store.path.resolve())
    return sorted(f"/{path.relative_to(folder).as_posix()}" for path in found)


class RemoteRun:
    """A tracked run made by a Ray job, and its local folder.

    Make one with ``RemoteRun.submit`` (a new job) or ``RemoteRun.attach`` (a job submitted
    earlier, by its job id or its local run); then ``follow`` it to its end, ``collect`` a
    job that has ended, or ``cancel`` it.

    Example:
        >>> run = RemoteRun.submit(RayCluster.connect("http://head:8265"), Path("train.py"), flags={"epochs": 3})
        >>> record = run.follow(on_output=print)
    """

    def __init__(self, cluster: RayCluster, store: RunStore, run_id: str | None, job_id: str):
        self.cluster, self.store = cluster, store
        self.run_id, self.job_id = run_id, job_id  # run_id None: learnt from the job's metadata when collected
        self.requested: tuple[str, str] | None = None  # (status, reason) of a cancel asked here
        self._lock = threading.Lock()

    @classmethod
    def submit(
        cls,
        cluster: RayCluster,
        script: Path,
        flags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        runs_dir: str | os.PathLike[str] | None = None,
        args: Sequence[str] = (),
        command_line_flags: Mapping[str, str] | None = None,
        cpus: float = 1,
        gpus: float = 0,
        requirements: str | os.PathLike[str] | None = None,
        limit_threads: bool = False,
    ) -> RemoteRun:
        """Opens the run's local folder and submits the job running it; a refused job is filed as failed."""
        store = RunStore(runs_dir)
        pip = read_requirements(requirements)
        flags, command_line_flags = dict(flags or {}), dict(command_line_flags or {})
        run_id, run_dir = store.open_run(
            script,
            args=args,
            requested_flags={**command_line_flags, **flags},
            properties=properties,
            remote={"transport": TRANSPORT, "address": cluster.address, "job_id": None},
        )
        try:
            job_id = cluster.submit(
                script,
                run_id,
                flags,
                properties or {},
                args,
                command_line_flags,
                cpus,
                gpus,
                pip,
                runs_dirs_inside(script.parent, store),
                thread_limits(threads=int(cpus)) if limit_threads else None,
            )
        except ClusterError as error:
            store.finish_run(run_dir, "failed", str(error))
            raise
        store.update_run(run_dir, remote={"transport": TRANSPORT, "address": cluster.address, "job_id": job_id})
        return cls(cluster, store, run_id, job_id)

    @classmethod
    def attach(cls, job: str, address: str | None = None, runs_dir: str | os.PathLike[str] | None = None) -> RemoteRun:
        """The run of a job submitted earlier: ``job`` is a Ray job id or a local run (id, prefix, ``latest``)."""
        store = RunStore(runs_dir)
        try:
            record = store.record(job)
        except RunNotFoundError:
            record = None
        if record is not None:
            remote = record.get("remote") or {}
            if not remote.get("job_id"):
                raise ClusterError(f"Run {record['id']} did not run on Ray (it has no job id).")
            cluster = RayCluster.connect(address or remote.get("address"))
            return cls(cluster, store, record["id"], remote["job_id"])
        return cls(RayCluster.connect(address), store, None, job)

    @property
    def run_dir(self) -> Path:
        """The run's local folder."""
        if self.run_id is None:
            run_id = (self._job_info(self.cluster, self.job_id).metadata or {}).get("layerflow_run_id")
            if not run_id:
                raise ClusterError(f"Job {self.job_id} was not submitted by layerflow (no run id in its metadata).")
            self.run_id = run_id
        return self.store.path / self.run_id

    @staticmethod
    def _job_info(cluster: RayCluster, job_id: str) -> Any:
        try:
            return cluster.job_info(job_id)
        except Exception as error:  # noqa: BLE001 - the job client raises RuntimeError with the server's reason
            raise ClusterError(f"No job {job_id!r} at {cluster.address}: {error}") from None

    # --- following a job as it runs -----------------------------------------------------------

    def _add_output(self, line: str) -> None:
        with self._lock, open(self.run_dir / f.OUTPUT_FILE, "a") as stream:
            stream.write(line + "\n")

    def _add_metrics(self, epoch: dict[str, Any]) -> None:
        with self._lock:
            f.append_jsonl(self.run_dir / f.METRICS_FILE, epoch)

    def follow(
        self, on_output: Callable[[str], None] | None = None, on_metrics: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
        """Streams the job's output and metrics into the run folder (and to the callbacks) until
        it ends, then files the run; returns its final record."""

        def output(line: str) -> None:
            self._add_output(line)
            (on_output or _ignore)(line)

        def metrics(epoch: dict[str, Any]) -> None:
            self._add_metrics(epoch)
            (on_metrics or _ignore)(epoch)

        decoder = JobLogDecoder(output, metrics)
        lost = self.cluster.follow(self.job_id, decoder)
        return self._file(decoder, lost)

    def logs(self) -> str:
        """The job's log so far (with the marked metrics and archive lines)."""
        try:
            return self.cluster.logs(self.job_id)
        except Exception as error:  # noqa: BLE001
            raise ClusterError(f"No logs for job {self.job_id!r} at {self.cluster.address}: {error}") from None

    def collect(self) -> dict[str, Any]:
        """Files an ended job's run from its log (a detached ``cloud train``, or one followed elsewhere)."""
        info = self._job_info(self.cluster, self.job_id)
        assert info is not None, "the job's info was read when contact was not lost"
        status = str(getattr(info.status, "value", info.status))
        if status not in TERMINAL_STATUSES:
            raise ClusterError(
                f"Job {self.job_id} is still {status.lower()}; collect it once it has ended "
                f"(`layerflow cloud logs {self.job_id}` shows its output so far)."
            )
        if self.run_id is None:
            self.run_id = (info.metadata or {}).get("layerflow_run_id") or None
        if self.run_dir.is_dir():
            (self.run_dir / f.OUTPUT_FILE).unlink(missing_ok=True)  # the log holds all of it again
        else:  # submitted from another machine: open its folder here under its own id
            script = Path((info.metadata or {}).get("script") or "unknown.py")
            self.store.open_run(
                script,
                run_id=self.run_id,
                remote={"transport": TRANSPORT, "address": self.cluster.address, "job_id": self.job_id},
            )
        decoder = JobLogDecoder(self._add_output, _ignore)
        decoder.feed(self.logs())
        decoder.close()
        return self._file(decoder, None)

    def cancel(self, status: str = "interrupted", reason: str = "the Ray job was stopped") -> None:
        """Asks the cluster to stop the job; the run is filed with ``status`` and ``reason`` when it ends."""
        if self.requested is not None:
            return
        self.requested = (status, reason)
        try:
            self.cluster.stop(self.job_id)
        except Exception as error:  # noqa: BLE001
            raise ClusterError(f"Cannot stop job {self.job_id!r} at {self.cluster.address}: {error}") from None

    def file_now(self) -> dict[str, Any]:
        """Files the run with what arrived so far (after a cancel, without waiting for the job's end)."""
        return self._file(JobLogDecoder(_ignore, _ignore), None)

    def _file(self, decoder: JobLogDecoder, lost: Exception | None) -> dict[str, Any]:
        """Files what a finished (or lost) job left: its run folder if it sent one, else why it ended."""
        info = None
        if lost is None:
            try:
                info = self.cluster.job_info(self.job_id)
            except Exception as error:  # noqa: BLE001
                lost = error
        finish = self.store.finish_run
        if decoder.archive is not None:
            record = self.store.file_returned_run(self.run_dir, decoder.archive)
            if self.requested and record["status"] != "completed":  # a stop that came after the end changes nothing
                record = finish(self.run_dir, *self.requested, end=record.get("end"))
            return record
        if self.requested:
            return finish(self.run_dir, *self.requested)
        if lost is not None:
            return finish(
                self.run_dir,
                "failed",
                f"lost contact with the Ray cluster at {self.cluster.address} while "
                f"job {self.job_id} ran ({type(lost).__name__}: {lost}); its output until then is in output.log",
            )
        assert info is not None, "the job's info was read when contact was not lost"
        status = str(getattr(info.status, "value", info.status))
        if status == "STOPPED":
            return finish(self.run_dir, "interrupted", f"the Ray job {self.job_id} was stopped")
        problem = decoder.archive_problem or "the job sent no run folder back (is layerflow installed on the cluster?)"
        return finish(self.run_dir, "failed", f"Ray job {self.job_id} {status.lower()}: {info.message or problem}")

    def final_record(self) -> dict[str, Any]:
        """The run's record as its local folder holds it now."""
        return self.store.final_record(self.run_dir)


def echo(line: str) -> None:
    """Prints a line of a job's output here as it arrives."""
    print(line, flush=True)


__all__ = ["RemoteRun", "echo", "runs_dirs_inside"]
