"""A static web page that runs an exported model in the browser with onnxruntime-web.

onnxruntime-web is installed from npm when the page is built (kept in a user cache) and
copied next to the page, so viewing it fetches nothing from any CDN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

from layerflow.deploy.bundle import MODEL_FILE, SIGNATURE_FILE, BundleError, read_bundle

ORT_WEB_VERSION = "1.23.2"
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")


def _runtime_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "layerflow" / f"onnxruntime-web-{ORT_WEB_VERSION}"
    dist = base / "node_modules" / "onnxruntime-web" / "dist"
    if all((dist / name).is_file() for name in RUNTIME_FILES):
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise BundleError("Building the web page needs npm (Node.js) to install onnxruntime-web; install Node.js.")
    base.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(base),
                           f"onnxruntime-web@{ORT_WEB_VERSION}"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not all((dist / name).is_file() for name in RUNTIME_FILES):
        raise BundleError(f"npm could not install onnxruntime-web@{ORT_WEB_VERSION}:\n{done.stderr[-2000:]}")
    return dist


def page_template(signature: dict[str, Any]) -> str:
    """The page for a model: ``image.html`` (draw, drop or pick an image; top classes as bars) for an
    image classifier, ``index.html`` (inputs as JSON or a form) for everything else.

    An image model has one float input shaped ``[batch, H, W]``, ``[batch, C, H, W]`` or
    ``[batch, H, W, C]`` with C of 1 or 3 and H, W of at least 4.

    Args:
        signature: the bundle's ``signature.json``.

    Returns:
        The file name of the template under ``web_template/``.

    Example:
        >>> page_template({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 28, 28, 1]}], "outputs": []})
        'image.html'
    """
    inputs = signature.get("inputs") or []
    if len(inputs) != 1 or not str(inputs[0].get("dtype", "")).startswith("float"):
        return "index.html"
    shape = inputs[0].get("shape") or []
    dims = shape[1:]
    if not all(isinstance(d, int) for d in dims):
        return "index.html"
    if len(dims) == 2:
        height, width = dims
    elif len(dims) == 3 and (dims[0] in (1, 3) or dims[2] in (1, 3)):
        height, width = (dims[1], dims[2]) if dims[0] in (1, 3) and dims[2] not in (1, 3) else (dims[0], dims[1])
    else:
        return "index.html"
    return "image.html" if min(height, width) >= 4 else "index.html"


def build_web_page(bundle_dir: str | os.PathLike[str], out: str | os.PathLike[str], title: str | None = None,
                   sample: Any = None) -> Path:
    """Writes ``out/index.html`` with the model, its signature and the onnxruntime-web runtime.

    Args:
        bundle_dir: an export bundle (``<base>/<name>/<version>``).
        out: the folder of the page; serve it over HTTP (browsers refuse WebAssembly from file://).
        title: the page's heading (default: the model's name).
        sample: inputs to show and predict when the page opens (JSON-serialisable).

    Returns:
        The path of ``index.html``.
    """
    bundle = read_bundle(Path(bundle_dir))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runtime = _runtime_dir()
    for name in RUNTIME_FILES:
        shutil.copy2(runtime / name, out / name)
    shutil.copy2(bundle["model"], out / MODEL_FILE)
    shutil.copy2(Path(bundle["path"]) / SIGNATURE_FILE, out / SIGNATURE_FILE)
    if sample is not None:
        (out / "sample.json").write_text(json.dumps(sample))
    name = title or Path(bundle["path"]).parent.name
    page = resources.files("layerflow.deploy").joinpath(f"web_template/{page_template(bundle['signature'])}").read_text()
    (out / "index.html").write_text(page.replace("{{TITLE}}", name.replace("<", "&lt;")))
    return out / "index.html"
