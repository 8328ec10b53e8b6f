"""Shared fixtures: an isolated runs folder, small IDX datasets, helpers to write scripts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs folder, also set as $LAYERFLOW_RUNS_DIR; the working dir is tmp_path."""
    path = tmp_path / "runs"
    monkeypatch.setenv("LAYERFLOW_RUNS_DIR", str(path))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def write_script(tmp_path):
    """Writes a script (dedented) into its own folder and returns its path."""

    def write(body: str, name: str = "train.py", folder: str = "project") -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body))
        return path

    return write


def make_idx_dataset(folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> None:
    """Writes the four gzip IDX files of a tiny MNIST-like dataset into ``folder``."""
    from layerflow.datasets import write_idx

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


def layerflow_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300, **kwargs):
    """Runs the installed ``layerflow`` command in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "layerflow.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )
