"""Entry point of a data-parallel run's driver process: ``python -m layerflow.cloud.train_workers SCRIPT ARGS``.

``lf.training_run(..., workers=N)`` starts this module instead of ``layerflow.runs.launch``
(the run store opens and finishes the run as for any run). It starts or joins a Ray cluster,
checks that the cluster can place the workers, and runs the unchanged script on N Ray Train
workers (``TorchTrainer``: gloo on CPU, NCCL on GPU), each with the same flags:

- rank 0 records (metrics, model, evaluation) into the run folder; the other ranks record
  nothing; rank 0's output is this process's output (so ``output.log``), rank r's is kept in
  ``workers/<r>.log``, Ray's own messages in ``workers/ray.log``;
- run.json gets ``distributed``: the world size and each worker's node and devices;
- a failure on one worker fails the run with that worker's traceback.

The workers write into the run folder directly, so they must share its file system with this
process (a local cluster, or a cluster on one machine).
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.context import RUN_DIR_ENV, record_flags
from layerflow.runs.store import RunStore
from layerflow.runs.training_run import REFUSED_EXIT_CODE, WORKERS_ENV

WORKERS_DIR = "workers"


def _mark_exit(run_dir: Path, status: str, error: str | None = None, **fields: Any) -> None:
    marker = {"status": status, "end": datetime.now(UTC).isoformat(), **fields}
    if error:
        marker["error"] = error
    f.write_json(run_dir / f.EXIT_FILE, marker)


def placement_problem(workers: int, cpus: float, gpus: float, resources: dict[str, float]) -> str | None:
    """Why a cluster with ``resources`` cannot place ``workers`` workers of ``cpus``/``gpus`` each, or None."""
    wanted = {"CPU": workers * cpus, "GPU": workers * gpus}
    short = [
        f"{wanted[name]:g} {name}s ({workers} workers x {per:g}) but the cluster has {resources.get(name, 0):g}"
        for name, per in (("CPU", cpus), ("GPU", gpus))
        if wanted[name] > resources.get(name, 0)
    ]
    if not short:
        return None
    return (
        "The Ray cluster cannot place the workers: asked for "
        + "; ".join(short)
        + ". Use fewer --workers, smaller --cpus-per-worker/--gpus-per-worker, or a larger cluster."
    )


# --- on each worker -------------------------------------------------------------------------


def _redirect_output(path: Path) -> None:
    """Points this process's stdout and stderr (file descriptors too) at ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def _worker_devices() -> list[str]:
    import ray.train.torch

    device = ray.train.torch.get_device()
    return [str(device)]


def _keras_importable() -> bool:
    import importlib.util

    from layerflow.backend import selected_backend

    os.environ.setdefault("KERAS_BACKEND", selected_backend())
    return importlib.util.find_spec("keras") is not None


def run_script_on_worker(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: runs the script as ``__main__`` on this worker."""
    import ray.train

    context = ray.train.get_context()
    rank = context.get_world_rank()
    run_dir = Path(config["run_dir"])
    workers_dir = run_dir / WORKERS_DIR
    _redirect_output(workers_dir / f"{rank}.log")
    os.environ.update(config["env"])
    if rank == 0:
        os.environ[RUN_DIR_ENV] = str(run_dir)
    else:
        os.environ.pop(RUN_DIR_ENV, None)  # only rank 0 records
    f.write_json(
        workers_dir / f"{rank}.json",
        {
            "rank": rank,
            "node": context.get_node_rank() if hasattr(context, "get_node_rank") else None,
            "node_ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "devices": _worker_devices(),
        },
    )
    os.chdir(config["cwd"])
    from layerflow.flags import on_flags_resolved
    from layerflow.runs.launch import _KerasImportHook

    on_flags_resolved(record_flags)
    if "keras" in sys.modules or _keras_importable():
        # A worker of a data-parallel run: its models' fit trains data-parallel (the run asked for
        # it; nothing else in a worker trains), and rank 0's run records them.
        import keras

        from layerflow.fastfit import distributed
        from layerflow.runs import keras_autolog

        distributed.install(keras)
        keras_autolog.install(keras)
    else:
        sys.meta_path.insert(0, _KerasImportHook())
    script = config["script"]
    sys.argv = [script, *config["args"]]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            return
        error = f"SystemExit({exit_.code!r})"
        f.write_json(workers_dir / f"{rank}.error.json", {"rank": rank, "error": error, "traceback": error})
        raise
    except BaseException as error:
        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        f.write_json(
            workers_dir / f"{rank}.error.json",
            {"rank": rank, "error": f"{type(error).__name__}: {error}", "traceback": text},
        )
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# --- on the driver --------------------------------------------------------------------------


def _follow_file(path: Path, out: Any, stop: threading.Event) -> None:
    """Copies what is appended to ``path`` to ``out`` until ``stop`` is set (then the rest)."""
    position = 0
    while True:
        finished = stop.is_set()
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            if chunk:
                position += len(chunk)
                out.write(chunk)
                out.flush()
        if finished:
            return
        time.sleep(0.1)


def _collect_workers(workers_dir: Path, world_size: int) -> tuple[list[dict], list[dict]]:
    infos: list[dict] = []
    failures: list[dict] = []
    for rank in range(world_size):
        for name, into in ((f"{rank}.json", infos), (f"{rank}.error.json", failures)):
            path = workers_dir / name
            if path.is_file():
                into.append(f.read_json(path, {}) or {})
                path.unlink()
    return infos, failures


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m layerflow.cloud.train_workers SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    script = os.path.abspath(argv[0])
    settings = json.loads(os.environ[WORKERS_ENV])
    workers, cpus, gpus = (
        int(settings["workers"]),
        float(settings["cpus_per_worker"]),
        float(settings["gpus_per_worker"]),
    )
    run_dir = Path(os.environ[RUN_DIR_ENV])
    workers_dir = run_dir / WORKERS_DIR
    workers_dir.mkdir(exist_ok=True)
    rank0_log = workers_dir / "0.log"

    # This process's stdout is the run's output.log: rank 0's output goes there; Ray's own
    # messages go to workers/ray.log.
    rank0_out = os.fdopen(os.dup(1), "wb", buffering=0)
    _redirect_output(workers_dir / "ray.log")
    stop = threading.Event()
    follower = threading.Thread(target=_follow_file, args=(rank0_log, rank0_out, stop), daemon=True)
    follower.start()

    # Ray Train would also send every print through its logger: each line twice in the logs.
    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = tempfile.mkdtemp(prefix="layerflow-train-")
    try:
        if not ray.is_initialized():
            ray.init(
                address=os.environ.get("RAY_ADDRESS") or None,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
            )
        problem = placement_problem(workers, cpus, gpus, ray.cluster_resources())
        if problem is not None:
            rank0_out.write((problem + "\n").encode())
            _mark_exit(run_dir, "failed", problem, refused=True)
            return REFUSED_EXIT_CODE
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("LAYERFLOW_", "KERAS_")) and k not in (RUN_DIR_ENV, WORKERS_ENV)
        }
        env["PYTHONUNBUFFERED"] = "1"
        trainer = TorchTrainer(
            run_script_on_worker,
            train_loop_config={
                "run_dir": str(run_dir),
                "script": script,
                "args": argv[1:],
                "cwd": os.getcwd(),
                "env": env,
            },
            scaling_config=ScalingConfig(
                num_workers=workers,
                use_gpu=gpus > 0,
                resources_per_worker={"CPU": cpus, **({"GPU": gpus} if gpus else {})},
            ),
            run_config=RunConfig(name="layerflow", storage_path=storage, failure_config=FailureConfig(max_failures=0)),
        )
        error: BaseException | None = None
        try:
            trainer.fit()
        except Exception as raised:  # noqa: BLE001 - the worker's own failure file says more
            error = raised
        infos, failures = _collect_workers(workers_dir, workers)
        RunStore(run_dir.parent).update_run(
            run_dir,
            distributed={
                "world_size": workers,
                "backend": "nccl" if gpus else "gloo",
                "cpus_per_worker": cpus,
                "gpus_per_worker": gpus,
                "workers": sorted(infos, key=lambda info: info.get("rank", 0)),
            },
        )
        if failures or error is not None:
            first = min(failures, key=lambda failure: failure["rank"]) if failures else None
            message = (
                f"worker {first['rank']} failed: {first['error']}"
                if first
                else f"the workers failed: {type(error).__name__}: {str(error)[:2000]}"
            )
            if first and first["rank"] != 0:
                rank0_out.write(f"\n{message}\n{first['traceback']}".encode())
            _mark_exit(
                run_dir,
                "failed",
                message,
                **({"failed_worker": first["rank"], "traceback": first["traceback"]} if first else {}),
            )
            return 1
        _mark_exit(run_dir, "completed")
        return 0
    except KeyboardInterrupt:
        _mark_exit(run_dir, "interrupted", "KeyboardInterrupt")
        return 130
    finally:
        stop.set()
        follower.join(timeout=10)
        shutil.rmtree(storage, ignore_errors=True)
        if rank0_log.exists():
            rank0_log.unlink()  # its text is output.log
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
