"""``layerflow ui``: browse runs, compare them, and watch runs in progress in the browser.

Example:
    >>> import layerflow as lf
    >>> server = lf.ui(runs_dir="runs")        # in a notebook: serves in the background
    >>> server.url
    'http://127.0.0.1:8600/'
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import types
import webbrowser
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from layerflow.errors import LayerflowError, MissingDependencyError

__all__ = ["UIError", "UIServer", "create_app", "serve_ui", "ui", "view_live"]


def create_app(runs_dir: str | os.PathLike[str] | None = None, token: str | None = None) -> Any:
    """The UI as an ASGI app over one runs folder (see ``layerflow.ui.app.create_app``).

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        token: when given, every page but /health needs it.

    Returns:
        A Starlette app.

    Example:
        >>> app = create_app("runs")
    """
    try:
        import sse_starlette  # noqa: F401 - the live pages need it
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(
            f"layerflow ui needs the ui extra ({error.name} is not installed): pip install 'layerflow[ui]'."
        ) from None
    from layerflow.ui.app import create_app as make

    return make(None if runs_dir is None else os.fspath(runs_dir), token=token)


DEFAULT_PORT = 8600


class UIError(LayerflowError, ValueError):
    """A UI that cannot start as asked (a bad port or host, the port taken)."""


def _check(host: str, port: int) -> None:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise UIError(f"port={port!r}: expected a TCP port number from 0 to 65535 (0: any free port).")
    if not isinstance(host, str) or not host:
        raise UIError(f"host={host!r}: expected an address to bind, e.g. '127.0.0.1'.")


@dataclass
class UIServer:
    """A UI serving in a background thread of this process (what ``lf.ui`` returns)."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        """Stops serving and waits for the thread to end."""
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def _repr_html_(self) -> str:
        return f'<a href="{self.url}" target="_blank">layerflow ui at {self.url}</a>'


def _config(runs_dir, host, port, token):
    import uvicorn

    return uvicorn.Config(
        create_app(runs_dir, token=token), host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )


def ui(
    runs_dir: str | os.PathLike[str] | None = None,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    token: str | None = None,
    browse: bool = False,
) -> UIServer:
    """Starts the UI in a background thread (for notebooks and scripts) and returns at once.

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        port: TCP port (0: any free one; see ``UIServer.url``).
        host: address to bind; loopback unless told otherwise.
        token: require this token (open ``url`` with ``?token=...``).
        browse: also open the page in the default browser.

    Returns:
        A ``UIServer`` with its ``url``; ``stop()`` ends it.

    Example:
        >>> server = lf.ui("runs", port=0)
        >>> server.url
        >>> server.stop()
    """
    _check(host, port)
    import uvicorn

    server = uvicorn.Server(_config(runs_dir, host, port, token))
    thread = threading.Thread(target=server.run, daemon=True, name="layerflow-ui")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive():
            raise UIError(f"The UI could not listen on {host}:{port} (taken, or not an address of this machine).")
        if time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise UIError(f"The UI did not start on {host}:{port} within 30 s.")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}/"
    if browse:
        webbrowser.open(url + (f"?token={token}" if token else ""))
    return UIServer(url=url, server=server, thread=thread)


def serve_ui(
    runs_dir: str | os.PathLike[str] | None = None,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    token: str | None = None,
) -> None:
    """Serves the UI in this process until Ctrl-C (what ``layerflow ui`` runs).

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``).
        port: TCP port.
        host: address to bind.
        token: require this token.

    Example:
        >>> serve_ui("runs", port=8600)
    """
    _check(host, port)
    import uvicorn

    if not _port_free(host, port):
        raise UIError(f"Port {port} on {host} is taken; choose another with --port.")
    server = uvicorn.Server(_config(runs_dir, host, port, token))
    print(
        f"layerflow ui: http://{host}:{port}/" + (f"?token={token}" if token else "") + "  (Ctrl-C stops it)",
        file=sys.stderr,
    )
    server.run()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _serving(url: str) -> str | None:
    """The runs folder a UI at ``url`` serves, None if no UI answers there."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + "health", timeout=1) as response:
            return json.loads(response.read()).get("runs_dir")
    except (OSError, ValueError):
        return None


def view_live(
    run_id: str, runs_dir: str | os.PathLike[str] | None = None, port: int = DEFAULT_PORT, host: str = "127.0.0.1"
) -> str:
    """Opens the live page of run ``run_id`` in the browser, starting a UI in the background if none serves this runs folder.

    The run need not exist yet: the page waits for it to start (``layerflow run --view``).

    Args:
        run_id: the id the run is (or will be) recorded under.
        runs_dir: its runs folder.
        port: the UI's port; when another folder's UI holds it, the next free port is used.
        host: the UI's address.

    Returns:
        The page's URL.

    Example:
        >>> view_live("20260101T000000-000000-0a1b", "runs")
    """
    from layerflow.runs.store import runs_dir as resolve_runs_dir

    _check(host, port)
    folder = str(resolve_runs_dir(runs_dir))
    for candidate in range(port, port + 20):
        base = f"http://{host}:{candidate}/"
        serving = _serving(base)
        if serving == folder:
            break
        if serving is None and _port_free(host, candidate):
            subprocess.Popen(
                [sys.executable, "-m", "layerflow.ui", "--runs-dir", folder, "--port", str(candidate), "--host", host],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 30
            while _serving(base) != folder and time.monotonic() < deadline:
                time.sleep(0.1)
            break
    else:
        raise UIError(f"No free port for the UI from {port} to {port + 19} on {host}.")
    url = f"{base}runs/{run_id}?wait=1"
    webbrowser.open(url)
    return url


def _main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m layerflow.ui", description="Serve the layerflow UI.")
    parser.add_argument("--runs-dir")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    serve_ui(args.runs_dir, port=args.port, host=args.host, token=args.token)


def new_run_id() -> str:
    """A fresh run id (as the runs store makes them) for a run whose page opens before it starts."""
    from datetime import datetime

    from layerflow.runs.ids import format_run_id

    return format_run_id(datetime.now(UTC))


class _CallableModule(types.ModuleType):
    """``lf.ui(...)`` calls ``ui`` even after ``import layerflow.ui`` made ``lf.ui`` this module."""

    def __call__(self, *args: Any, **kwargs: Any) -> UIServer:
        return ui(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
