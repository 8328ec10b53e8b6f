"""What a run ran on: Python, platform, host and the versions of the packages that matter."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from typing import Any

_PACKAGES = ("layerflow", "keras", "torch", "jax", "numpy", "pandas")


def environment() -> dict[str, Any]:
    """A JSON-ready description of this process's environment (imports nothing heavy)."""
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "keras_backend": os.environ.get("KERAS_BACKEND", "torch"),
        "packages": packages,
    }
