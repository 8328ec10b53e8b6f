"""System metrics of a run: CPU, memory and GPU use of the script's process tree, sampled live.

``training_run`` starts a :class:`SystemMetricsSampler` on the script's process as soon as it
is started; a daemon thread appends one JSON line every few seconds to the run's
``system_metrics.jsonl`` (psutil; GPUs through nvidia-ml-py when it is installed and a GPU
exists) and stops when the script ends. The sampler only reads: a process that vanishes
between two samples is skipped, and a failing sample never fails the run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

SYSTEM_METRICS_FILE = "system_metrics.jsonl"
INTERVAL_ENV = "LAYERFLOW_SYSTEM_METRICS_INTERVAL"
DEFAULT_INTERVAL_SECONDS = 2.0
# The UI reads at most this much of the end of the file, and draws at most this many points.
MAX_READ_BYTES = 8 * 1024 * 1024
MAX_POINTS = 2000
_MIB = 1024 * 1024


def sampling_interval() -> float:
    """Seconds between two samples: ``$LAYERFLOW_SYSTEM_METRICS_INTERVAL`` (0 turns sampling off) or 2."""
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text) if text else DEFAULT_INTERVAL_SECONDS
    except ValueError:
        value = DEFAULT_INTERVAL_SECONDS
    return value if value >= 0 else DEFAULT_INTERVAL_SECONDS


class _Gpus:
    """Device-wide utilisation and memory of every NVIDIA GPU, or nothing where NVML is absent."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml  # nvidia-ml-py, optional

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001 - no package, no driver or no GPU: no GPU columns
            self.handles = []

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for index, handle in enumerate(self.handles):
            try:
                rates = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # noqa: BLE001 - a GPU that stops answering is left out of this sample
                continue
            values[f"gpu{index}_utilization_percent"] = float(rates.gpu)
            values[f"gpu{index}_memory_mib"] = round(memory.used / _MIB, 1)
        return values


class SystemMetricsSampler:
    """Samples a process tree's CPU and memory (and the machine's GPUs) into ``system_metrics.jsonl``.

    Each line: ``time`` (Unix seconds), ``seconds`` (since the sampler started),
    ``cpu_percent`` (the tree's CPU, 100 = one core), ``memory_rss_mib`` (the tree's resident
    memory), ``processes``, ``host_cpu_percent``, ``host_memory_percent`` and, per GPU,
    ``gpu<i>_utilization_percent`` and ``gpu<i>_memory_mib`` (device-wide).

    Args:
        run_dir: the run's folder.
        pid: the root of the process tree to sample (the script's process).
        interval: seconds between samples (default :func:`sampling_interval`).

    Example:
        >>> sampler = SystemMetricsSampler(run_dir, process.pid).start()
        >>> ...; sampler.stop()
    """

    def __init__(self, run_dir: str | os.PathLike[str], pid: int, interval: float | None = None) -> None:
        self.path = Path(run_dir) / SYSTEM_METRICS_FILE
        self.pid = pid
        self.interval = sampling_interval() if interval is None else interval
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._processes: dict[int, Any] = {}  # kept between samples: cpu_percent measures since the last call
        self._gpus: _Gpus | None = None
        self._started = time.monotonic()

    def start(self) -> SystemMetricsSampler:
        """Starts sampling on a daemon thread; returns the sampler."""
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"system-metrics-{self.pid}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops sampling and waits for the thread (a sample under way is finished)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        import psutil

        self._gpus = _Gpus()
        psutil.cpu_percent(None)
        self.sample()  # primes the CPU counters: its cpu_percent is 0
        while not self._stop.wait(self.interval):
            if self.sample() is None:
                break

    def sample(self) -> dict[str, Any] | None:
        """Takes one sample and appends it; None when the process tree is gone."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = rss = 0.0
        alive: dict[int, Any] = {}
        for process in tree:
            process = self._processes.get(process.pid, process)
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss
            except psutil.Error:
                continue
            alive[process.pid] = process
        self._processes = alive
        if not alive:
            return None
        memory = psutil.virtual_memory()
        line = {
            "time": round(time.time(), 3),
            "seconds": round(time.monotonic() - self._started, 3),
            "cpu_percent": round(cpu, 1),
            "memory_rss_mib": round(rss / _MIB, 1),
            "processes": len(alive),
            "host_cpu_percent": psutil.cpu_percent(None),
            "host_memory_percent": memory.percent,
            **(self._gpus.sample() if self._gpus is not None else {}),
        }
        try:
            with open(self.path, "a") as stream:
                stream.write(json.dumps(line) + "\n")
        except OSError:
            return None  # the run folder went away (purged): nothing more to record
        self.samples += 1
        return line


def start_system_metrics(run_dir: str | os.PathLike[str], pid: int) -> SystemMetricsSampler | None:
    """Starts sampling the process tree of ``pid`` into the run, unless psutil is missing or sampling is off.

    Args:
        run_dir: the run's folder.
        pid: the script's process id.

    Returns:
        The running sampler (call ``stop()`` when the script ends), or None.

    Example:
        >>> sampler = start_system_metrics(run_dir, process.pid)
    """
    interval = sampling_interval()
    if interval == 0:
        return None
    try:
        import psutil  # noqa: F401
    except ImportError:
        return None
    return SystemMetricsSampler(run_dir, pid, interval).start()


def read_system_metrics(run_dir: str | os.PathLike[str], max_points: int = MAX_POINTS) -> dict[str, list[Any]]:
    """A run's system metrics as chart columns: ``{"seconds": [...], "cpu_percent": [...], ...}``.

    Reads at most the last 8 MiB of the file and keeps at most ``max_points`` evenly spaced
    samples; a line still being written (or damaged) is skipped.

    Args:
        run_dir: the run's folder.
        max_points: the most samples returned.

    Returns:
        One list per measure, aligned on ``seconds`` (None where a sample lacks it); empty when
        the run has no samples.

    Example:
        >>> read_system_metrics("runs/20260101T000000-000000-0a1b")["memory_rss_mib"][-1]
        512.3
    """
    path = Path(run_dir) / SYSTEM_METRICS_FILE
    try:
        with open(path, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - MAX_READ_BYTES))
            data = stream.read()
    except OSError:
        return {}
    if size > MAX_READ_BYTES:
        data = data[data.find(b"\n") + 1 :]
    samples = []
    for raw in data.split(b"\n"):
        try:
            sample = json.loads(raw)
        except ValueError:
            continue
        if isinstance(sample, dict) and isinstance(sample.get("seconds"), (int, float)):
            samples.append(sample)
    if len(samples) > max_points:
        step = len(samples) / max_points
        samples = [samples[int(i * step)] for i in range(max_points)]
    names = list(
        dict.fromkeys(
            k for s in samples for k, v in s.items() if k not in ("time", "seconds") and isinstance(v, (int, float))
        )
    )
    columns: dict[str, list[Any]] = {"seconds": [s["seconds"] for s in samples]} if samples else {}
    for name in names:
        columns[name] = [s.get(name) for s in samples]
    return columns
