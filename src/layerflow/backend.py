"""Which Keras backend layerflow runs on, and what hardware it sees.

layerflow selects the Keras backend before Keras is first imported: torch unless the
user has set ``KERAS_BACKEND`` (``jax`` is supported with the ``layerflow[jax]`` extra).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
from typing import Any

from layerflow.errors import (  # noqa: F401 - TRAINING_PACKAGES and training_stack are also imported from here
    TRAIN_INSTALL,
    TRAINING_PACKAGES,
    InvalidValueError,
    MissingDependencyError,
    StateError,
    training_stack,
)

# The tested releases and the private Keras APIs have one owner, layerflow.tested_versions.
from layerflow.tested_versions import (  # noqa: F401 - re-exported: backend is where users look
    KERAS_PRIVATE_API_MODULES,
    KERAS_PRIVATE_APIS,
    TESTED_KERAS_VERSIONS,
    TESTED_TORCH_VERSIONS,
    minor_release,
)

DEFAULT_BACKEND = "torch"
SUPPORTED_BACKENDS = ("torch", "jax")

_BACKEND_PACKAGES = {"torch": "torch", "jax": "jax"}
_EXTRAS = {"torch": TRAIN_INSTALL, "jax": "pip install 'layerflow[jax]'"}


def selected_backend() -> str:
    """Returns the backend name layerflow will give Keras (``KERAS_BACKEND`` or torch)."""
    name = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND).strip().lower()
    if name not in SUPPORTED_BACKENDS:
        raise InvalidValueError(
            f"KERAS_BACKEND={name!r} is not supported by layerflow; expected one of {', '.join(SUPPORTED_BACKENDS)}."
        )
    return name


@training_stack("Keras (from layerflow import keras)")
def load_keras() -> Any:
    """Imports Keras 3 on the selected backend and returns layerflow's ``keras`` module.

    On torch that is ``layerflow.fastfit.layerflow_keras(keras)``: Keras itself, except that the
    models its ``Model``/``Sequential`` build have layerflow's fast path enabled (per model;
    ``import keras`` and the models it builds are left exactly as Keras made them). On JAX it is
    the ``keras`` module itself.

    Returns:
        The module ``from layerflow import keras`` gives.

    Example:
        >>> keras = load_keras()
        >>> keras.backend.backend()
        'torch'
    """
    name = selected_backend()
    package = _BACKEND_PACKAGES[name]
    try:
        importlib.import_module(package)
    except ImportError as error:
        raise MissingDependencyError(
            f"The Keras backend {name!r} needs the package {package!r}, which is not installed: {_EXTRAS[name]}"
        ) from error
    os.environ["KERAS_BACKEND"] = name
    keras = importlib.import_module("keras")
    if keras.backend.backend() != name:
        raise StateError(
            f"Keras was already imported on the {keras.backend.backend()!r} backend; "
            f"set KERAS_BACKEND={name} before anything imports keras."
        )
    if name == "torch":
        from layerflow.fastfit import layerflow_keras

        return layerflow_keras(keras)
    return keras


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(name: str) -> list[str]:
    if name == "torch":
        import torch

        devices = ["cpu"]
        if torch.cuda.is_available():
            devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            devices.append("mps")
        return devices
    import jax

    return [f"{d.platform}:{d.id}" for d in jax.devices()]


def backend_info() -> dict[str, Any]:
    """Reports the Keras backend in use, library versions and the devices it can train on.

    Returns:
        A dict: backend, keras and backend versions, python, platform, devices and gpu.

    Example:
        >>> info = layerflow.backend_info()
        >>> info["backend"], info["devices"]
        ('torch', ['cpu'])
    """
    keras = load_keras()
    name = keras.backend.backend()
    return {
        "backend": name,
        "keras": keras.__version__,
        "backend_version": _version(_BACKEND_PACKAGES[name]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "devices": _devices(name),
        "gpu": any(not d.startswith("cpu") for d in _devices(name)),
    }
