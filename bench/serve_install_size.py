"""Size of a serving environment: layerflow[serve] next to MLflow's, each in a fresh venv.

Each environment is installed with pip (from this machine's wheel cache and package index)
into its own virtual environment; the table reports its site-packages size, its package
count and whether torch, Keras or matplotlib came along.

    .venv/bin/python bench/serve_install_size.py

Writes bench/results/serve_install_size.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "serve_install_size.json"
HEAVY = ("torch", "keras", "matplotlib")


def source_copy(work: Path) -> Path:
    """The package sources alone (a build in the checkout would leave build/ and egg-info there)."""
    target = work / "layerflow-src"
    target.mkdir()
    for name in ("src", "pyproject.toml", "README.md"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, target / name)
    return target


def measure(name: str, requirements: list[str], work: Path, shown: list[str] | None = None) -> dict:
    venv = work / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *requirements], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"environment": name, "requirements": shown or requirements, "error": done.stderr[-1500:]}
    listed = json.loads(
        subprocess.run(
            [str(venv / "bin" / "pip"), "list", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    packages = {p["name"].lower() for p in listed} - {"pip", "setuptools"}
    site = next((venv / "lib").glob("python*/site-packages"))
    size = sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())
    tooling = sum(
        f.stat().st_size
        for d in site.glob("*")
        if d.name.split("-")[0] in ("pip", "setuptools", "pkg_resources", "_distutils_hack")
        for f in ([d] if d.is_file() else d.rglob("*"))
        if f.is_file()
    )
    return {
        "environment": name,
        "requirements": shown or requirements,
        "megabytes": round((size - tooling) / 2**20, 1),
        "packages": len(packages),
        "heavy": sorted(p for p in packages if p in HEAVY),
        "install_seconds": round(seconds, 1),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = source_copy(work)
        rows = [
            measure("layerflow-serve", [f"{source}[serve]"], work, ["layerflow[serve] (this checkout)"]),
            measure("mlflow-skinny-onnx", ["mlflow-skinny", "onnx", "onnxruntime", "pandas"], work),
            measure("mlflow-onnx", ["mlflow", "onnx", "onnxruntime"], work),
            measure(
                "layerflow-train-serve",
                [f"{source}[train,serve]", "torch==2.13.0"],
                work,
                ["layerflow[train,serve] (this checkout)", "torch==2.13.0"],
            ),
        ]
    print(f"{'environment':24} {'MB':>8} {'packages':>9}  torch/keras/matplotlib")
    for row in rows:
        if "error" in row:
            print(f"{row['environment']:24} failed: {row['error'][-300:]}")
            continue
        print(
            f"{row['environment']:24} {row['megabytes']:8.1f} {row['packages']:9d}  {', '.join(row['heavy']) or 'none'}"
        )
    sizes = {row["environment"]: row.get("megabytes") for row in rows}
    for peer in ("mlflow-skinny-onnx", "mlflow-onnx"):
        if sizes.get(peer) and sizes.get("layerflow-serve"):
            print(f"layerflow[serve] / {peer} = {sizes['layerflow-serve'] / sizes[peer]:.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
