"""A static web page that runs an exported model in the browser with onnxruntime-web.

onnxruntime-web is installed from npm when the page is built (kept in a user cache) and
copied next to the page, so viewing it fetches nothing from any CDN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2

from layerflow.deploy.bundle import MODEL_FILE, SIGNATURE_FILE, BundleError, read_bundle
from layerflow.errors import InvalidTypeError, InvalidValueError

ORT_WEB_VERSION = "1.23.2"
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")


def _runtime_dir() -> Path:
    base = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "layerflow"
        / f"onnxruntime-web-{ORT_WEB_VERSION}"
    )
    dist = base / "node_modules" / "onnxruntime-web" / "dist"
    if all((dist / name).is_file() for name in RUNTIME_FILES):
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise BundleError("Building the web page needs npm (Node.js) to install onnxruntime-web; install Node.js.")
    base.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(base),
            f"onnxruntime-web@{ORT_WEB_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not all((dist / name).is_file() for name in RUNTIME_FILES):
        raise BundleError(f"npm could not install onnxruntime-web@{ORT_WEB_VERSION}:\n{done.stderr[-2000:]}")
    return dist


def render_page(template: str, title: str) -> str:
    """The page ``web_template/<template>`` for a model titled ``title`` (HTML-escaped).

    The pages are Jinja templates sharing ``_page.html`` (the start-up code that reports a model
    that cannot load).

    Args:
        template: ``form.html``, ``image.html`` or ``index.html`` (see ``page_template``).
        title: the page's heading.

    Returns:
        The page's HTML.

    Example:
        >>> "<h1>iris</h1>" in render_page("form.html", "iris")
        True
    """
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("layerflow.deploy", "web_template"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(template).render(TITLE=title)


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: a missing value is written as null (numpy arrays become lists first)."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return value


def page_template(signature: dict[str, Any]) -> str:
    """The page template for a bundle: a form over raw feature inputs (form.html), an image
    classifier's page (image.html: draw, drop or pick an image; top classes as bars), else a JSON
    box (index.html).

    Args:
        signature: the bundle's ``signature.json``.

    Returns:
        The file name of the template under ``web_template/``.

    Example:
        >>> page_template({"raw_inputs": True})
        'form.html'
        >>> page_template({"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 28, 28, 1]}]})
        'image.html'
    """
    if signature.get("raw_inputs"):
        return "form.html"
    return "image.html" if _is_image_model(signature) else "index.html"


def _is_image_model(signature: dict[str, Any]) -> bool:
    """One float input shaped ``[batch, H, W]``, ``[batch, C, H, W]`` or ``[batch, H, W, C]``, C of 1 or 3, H and W >= 4."""
    inputs = signature.get("inputs") or []
    if len(inputs) != 1 or not str(inputs[0].get("dtype", "")).startswith("float"):
        return False
    shape = inputs[0].get("shape") or []
    dims = shape[1:]
    if not all(isinstance(d, int) for d in dims):
        return False
    if len(dims) == 2:
        height, width = dims
    elif len(dims) == 3 and (dims[0] in (1, 3) or dims[2] in (1, 3)):
        height, width = (dims[1], dims[2]) if dims[0] in (1, 3) and dims[2] not in (1, 3) else (dims[0], dims[1])
    else:
        return False
    return min(height, width) >= 4


def build_web_page(
    bundle_dir: str | os.PathLike[str], out: str | os.PathLike[str], title: str | None = None, sample: Any = None
) -> Path:
    """Writes ``out/index.html`` with the model, its signature and the onnxruntime-web runtime.

    Args:
        bundle_dir: an export bundle (``<base>/<name>/<version>``).
        out: the folder of the page; serve it over HTTP (browsers refuse WebAssembly from file://).
        title: the page's heading (default: the model's name).
        sample: inputs to show and predict when the page opens (JSON-serialisable); for a
            raw-feature bundle a list of row dicts, each typed into the form in turn.

    Returns:
        The path of ``index.html``.

    Example:
        >>> bundle = lf.export_model(model, "models", name="cnn")
        >>> build_web_page(bundle, "site", sample=x_test[:2].tolist())   # python -m http.server -d site
    """
    bundle = read_bundle(Path(bundle_dir))
    try:
        sample_json = None if sample is None else json.dumps(_without_nan(sample), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidValueError(
            f"sample must be JSON-serialisable inputs (nested lists or row dicts), e.g. "
            f"x[:3].tolist(); got {type(sample).__name__} ({error})."
        ) from None
    if title is not None and not isinstance(title, str):
        raise InvalidTypeError(f"title must be a string; got {type(title).__name__}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runtime = _runtime_dir()
    for name in RUNTIME_FILES:
        shutil.copy2(runtime / name, out / name)
    shutil.copy2(bundle["model"], out / MODEL_FILE)
    shutil.copy2(Path(bundle["path"]) / SIGNATURE_FILE, out / SIGNATURE_FILE)
    if sample_json is not None:
        (out / "sample.json").write_text(sample_json)
    name = title or Path(bundle["path"]).parent.name
    (out / "index.html").write_text(render_page(page_template(bundle["signature"]), name))
    return out / "index.html"
