"""Running a script as a tracked run: ``layerflow run`` and ``lf.training_run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layerflow.errors import InvalidTypeError, InvalidValueError, MissingFileError
from layerflow.flags import FLAGS_ENV, read_flag_values
from layerflow.runs import files as f
from layerflow.runs.context import RUN_DIR_ENV
from layerflow.runs.outputs import keep_outputs as copy_outputs
from layerflow.runs.outputs import working_files
from layerflow.runs.pty_tee import ScriptConsole
from layerflow.runs.source import git_state, snapshot_source
from layerflow.runs.store import RunStore
from layerflow.runs.system_metrics import start_system_metrics

_INTERRUPT_GRACE_SECONDS = 10


def _echo(chunk: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(chunk)
        buffer.flush()
    else:  # notebooks and other text-only streams
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()


def _stop_after_interrupt(process: subprocess.Popen) -> None:
    """After Ctrl-C: let the script see SIGINT (forwarded if the terminal did not), then kill it."""

    def forward() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)

    def kill() -> None:
        if process.poll() is None:
            process.kill()

    for delay, action in ((1.0, forward), (_INTERRUPT_GRACE_SECONDS, kill)):
        timer = threading.Timer(delay, action)
        timer.daemon = True
        timer.start()


def _follow(process: subprocess.Popen, log_path: Path, echo: bool, console: ScriptConsole) -> bool:
    """Copies the script's output until it exits; returns True when interrupted by Ctrl-C.

    Ctrl-C is handled by a signal handler rather than as KeyboardInterrupt, so that no
    output chunk is lost between reading and logging it while the script shuts down.
    """
    interrupted = threading.Event()

    def on_interrupt(signum, frame):
        if interrupted.is_set():  # a second Ctrl-C: stop waiting
            process.kill()
        else:
            interrupted.set()
            _stop_after_interrupt(process)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        console.pump(process, log_path, _echo if echo else None)
        process.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return interrupted.is_set()


class RunControl:
    """A handle to a run started by ``training_run`` that another thread can stop.

    The tuner uses it to stop a poor trial early (status ``stopped``) or to stop every
    running trial on Ctrl-C (status ``interrupted``). The script gets SIGINT, then is
    killed if it has not ended after a grace period; its output and metrics are kept.

    Example:
        >>> control = RunControl()
        >>> threading.Thread(target=lf.training_run, args=("train.py",), kwargs={"control": control}).start()
        >>> control.started.wait(); control.stop(reason="enough")
    """

    def __init__(self) -> None:
        self.started = threading.Event()
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self._stop = threading.Event()

    def stop(self, status: str = "stopped", reason: str = "stopped early") -> None:
        """Asks the run to stop; it is recorded with ``status`` and ``reason``."""
        if status not in ("stopped", "interrupted"):
            raise InvalidValueError(f"A stopped run's status is 'stopped' or 'interrupted', not {status!r}.")
        if not self._stop.is_set():
            self.status, self.reason = status, reason
            self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def _watch(self, process: subprocess.Popen) -> None:
        def wait_and_stop() -> None:
            self._stop.wait()
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(_INTERRUPT_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()

        threading.Thread(target=wait_and_stop, daemon=True, name=f"stop-{self.run_id}").start()


def _final_status(
    run_dir: Path, return_code: int, interrupted: bool, control: RunControl | None = None
) -> dict[str, Any]:
    try:
        marker = f.read_json(run_dir / f.EXIT_FILE, None) or {}
    except f.CorruptRunFile:
        marker = {}
    if control is not None and control.stop_requested:
        return {"status": control.status, "error": control.reason}
    if interrupted or return_code == 130:
        return {"status": "interrupted", "error": marker.get("error", "interrupted (Ctrl-C)")}
    if return_code < 0:
        name = signal.Signals(-return_code).name
        return {"status": "killed", "error": f"killed by {name}"}
    if return_code == 0:
        return {"status": "completed", "error": None}
    return {"status": "failed", "error": marker.get("error") or f"exit code {return_code}"}


def _split_flags(flags: Any) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """``training_run(flags=)`` as (values from a file, the file's name, values given in the call)."""
    if flags is None:
        return {}, None, {}
    if isinstance(flags, (str, os.PathLike)):
        return read_flag_values(flags), Path(flags).name, {}
    if isinstance(flags, Mapping):
        return {}, None, dict(flags)
    raise InvalidTypeError(
        f"flags= takes a mapping of flag values ({{'dropout': 0.3}}) or the path of a YAML file "
        f"of them ('tuned.yml'); got a {type(flags).__name__}."
    )


def check_script(script: str | os.PathLike[str]) -> Path:
    """The absolute path of a script to run, or the error saying it is missing or not Python."""
    script_path = Path(script)
    if not script_path.is_file():
        raise MissingFileError(f"Script {str(script)!r} does not exist (looked in {Path.cwd()}).")
    if script_path.suffix != ".py":
        raise InvalidValueError(f"Script {str(script)!r} is not a Python file; expected a .py script.")
    return script_path.absolute()


def training_run(
    script: str | os.PathLike[str] = "train.py",
    flags: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    runs_dir: str | os.PathLike[str] | None = None,
    args: Sequence[str] = (),
    command_line_flags: Mapping[str, str] | None = None,
    properties: Mapping[str, Any] | None = None,
    echo: bool = True,
    run_id: str | None = None,
    control: RunControl | None = None,
    env: Mapping[str, str] | None = None,
    config: str | None = None,
    keep_outputs: bool = True,
    workers: int | None = None,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
) -> dict[str, Any]:
    """Runs a Python script as a tracked run and returns its record.

    The script runs in a subprocess (working directory unchanged). Its output goes to
    the console and to ``output.log`` as it is printed; its folder is snapshotted; its
    flags, Keras training (per-epoch metrics, evaluation, summary, history plot) and
    saved model are recorded under ``runs_dir/<run-id>/``; files it writes in the working
    directory are kept in ``outputs/`` (``.gitignore`` honoured, size-capped, listed under
    ``outputs`` in the record). A failing or interrupted script still leaves a complete
    record with its status.

    Args:
        script: the Python script to run.
        flags: flag values overriding everything else (``lf.flags`` checks names and types),
            or the path of a YAML file of ``name: value`` pairs (e.g. ``"tuned.yml"``), which
            the command line's ``--flag`` still overrides.
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        args: further command-line arguments for the script.
        command_line_flags: ``--flag name=value`` strings, as given to ``layerflow run``.
        properties: custom properties recorded with the run (e.g. a tuning id).
        echo: print the script's output to this console too.
        run_id: the id to record the run under (default: a new one); it must be free.
        control: a ``RunControl`` through which another thread can stop the run.
        env: environment variables set for the script (on top of this process's).
        config: the profile of the script's ``flags.yml`` to use (tfruns' ``config``), laid
            over its ``default`` profile.
        keep_outputs: keep the files the script writes in the working directory (off for
            runs sharing one working directory at once, which could not tell theirs apart).
        workers: run the script data-parallel on this many Ray Train workers (a local Ray
            cluster unless ``$RAY_ADDRESS`` names one); still one run, recorded by rank 0, the
            other workers' output in ``workers/<rank>.log``. ``batch_size`` is then the global batch.
        cpus_per_worker: with ``workers``: the CPUs each worker reserves.
        gpus_per_worker: with ``workers``: the GPUs each worker reserves (NCCL when > 0).

    Returns:
        The run's record (``id``, ``status``, ``flags``, ``metrics``, ``evaluation``, ...).

    Example:
        >>> run = lf.training_run("train.py", flags={"dropout": 0.3})
        >>> run["status"], run["evaluation"]["accuracy"]
    """
    script_path = check_script(script)
    distributed = _check_workers(workers, cpus_per_worker, gpus_per_worker)
    file_flags, file_name, call_flags = _split_flags(flags)
    if config is not None and (not isinstance(config, str) or not config):
        raise InvalidValueError(f"config={config!r} must name a profile of the script's flags.yml, e.g. 'production'.")
    store = RunStore(runs_dir)
    extra: dict[str, Any] = {"flags_file": str(flags)} if file_name else {}
    if config:
        extra["config"] = config
    run_id, run_dir = store.open_run(
        script_path,
        args=args,
        run_id=run_id,
        properties=properties,
        requested_flags={**file_flags, **(command_line_flags or {}), **call_flags},
        **extra,
    )
    snapshot = snapshot_source(script_path.parent, run_dir / f.SOURCE_DIR, exclude=[store.path])
    store.update_run(run_dir, **snapshot, git=git_state(script_path.parent))

    env = {**os.environ, **(env or {})}
    env[RUN_DIR_ENV] = str(run_dir)
    env[FLAGS_ENV] = json.dumps(
        {
            "command_line": dict(command_line_flags or {}),
            "call": call_flags,
            "file": file_flags,
            "file_name": file_name,
            "config": config,
        }
    )
    working_dir, never_kept = Path.cwd(), [store.path]
    before = working_files(working_dir, never_kept) if keep_outputs else {}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("KERAS_BACKEND", "torch")
    entry = "layerflow.runs.launch"
    if distributed is not None:
        env[WORKERS_ENV] = json.dumps(distributed)
        entry = "layerflow.cloud.train_workers"  # the Ray Train driver (cloud/ owns everything Ray)
    console = ScriptConsole(echo)  # a pseudo-terminal when this console is one: Keras shows its live progress bar
    process = subprocess.Popen(
        [sys.executable, "-m", entry, str(script_path), *args],
        **console.popen_args(),
        env=env,
    )
    console.started()
    sampler = start_system_metrics(run_dir, process.pid)  # CPU, memory, GPUs -> system_metrics.jsonl
    if control is not None:
        control.run_id, control.run_dir = run_id, run_dir
        control._watch(process)
        control.started.set()
    try:
        interrupted = _follow(process, run_dir / f.OUTPUT_FILE, echo, console)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if sampler is not None:
            sampler.stop()

    outputs = copy_outputs(before, working_dir, run_dir, never_kept) if keep_outputs else {}
    final = store.finish_run(
        run_dir,
        **_final_status(run_dir, process.returncode, interrupted, control),
        exit_code=process.returncode,
        **outputs,
    )
    if echo:
        print(
            f"\nRun {run_id} {final['status']}"
            + (f": {final['error']}" if final.get("error") else "")
            + f"  ({run_dir})",
            file=sys.stderr,
        )
    if interrupted:
        raise KeyboardInterrupt
    if distributed is not None and process.returncode == REFUSED_EXIT_CODE:
        raise InvalidValueError(f"Run {run_id} failed before training: {final.get('error')}")
    return final


WORKERS_ENV = "LAYERFLOW_WORKERS"  # read by layerflow.cloud.train_workers
REFUSED_EXIT_CODE = 3  # layerflow.cloud.train_workers: the cluster cannot place the workers


def _check_workers(workers: Any, cpus: Any, gpus: Any) -> dict[str, Any] | None:
    """``training_run``'s worker settings, checked; None for a run in one process."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidValueError(
            f"workers={workers!r}: a data-parallel run needs a whole number of workers from 1, e.g. workers=2."
        )
    for name, value, least in (("cpus_per_worker", cpus, 0), ("gpus_per_worker", gpus, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise InvalidValueError(f"{name}={value!r} must be a number from {least}.")
    if cpus == 0 and gpus == 0:
        raise InvalidValueError("cpus_per_worker and gpus_per_worker cannot both be 0: a worker needs a CPU or a GPU.")
    return {"workers": workers, "cpus_per_worker": cpus, "gpus_per_worker": gpus}
