"""Entry point of the script's process in a tracked run: ``python -m layerflow.runs.launch SCRIPT ARGS``.

It arranges the recording (flags; the run's recorder callback in every Keras loop, see
``keras_autolog.install``, once anything imports keras), runs the script as ``__main__`` and
leaves an exit marker saying how the script ended, before the process exits.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import io
import os
import runpy
import signal
import sys
import traceback
from datetime import UTC, datetime
from typing import cast

from layerflow.runs import files as f
from layerflow.runs.context import current_run_dir, record_flags


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Adds the run's recorder to Keras's callback lists the moment the script (or anything) imports keras."""

    def find_spec(self, name, path, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_install(module):
            exec_module(module)
            from layerflow.runs import keras_autolog

            keras_autolog.install(module)

        spec.loader.exec_module = exec_and_install
        return spec


def _mark_exit(status: str, error: str | None = None) -> None:
    run_dir = current_run_dir()
    if run_dir is not None:
        marker = {"status": status, "end": datetime.now(UTC).isoformat()}
        if error:
            marker["error"] = error
        f.write_json(run_dir / f.EXIT_FILE, marker)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m layerflow.runs.launch SCRIPT [ARGS...]", file=sys.stderr)
        return 2
    script = os.path.abspath(argv[0])
    # The driver stops a run (Ctrl-C, the tuner's early stopping) with SIGINT, so it must raise
    # KeyboardInterrupt here even when this process inherited it ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from layerflow.flags import on_flags_resolved

    on_flags_resolved(record_flags)
    if "keras" in sys.modules:
        from layerflow.runs import keras_autolog

        keras_autolog.install(sys.modules["keras"])
    else:
        sys.meta_path.insert(0, _KerasImportHook())
    sys.argv = [script, *argv[1:]]
    sys.path[0] = os.path.dirname(script)
    try:
        runpy.run_path(script, run_name="__main__")
    except KeyboardInterrupt:
        _mark_exit("interrupted", "KeyboardInterrupt")
        traceback.print_exc()
        return 130
    except SystemExit as exit_:
        code = exit_.code
        if code in (None, 0):
            _mark_exit("completed")
            return 0
        _mark_exit("failed", f"SystemExit({code!r})")
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            return 1
        return code
    except BaseException as error:  # noqa: BLE001 - recorded, printed, and the exit code says it
        _mark_exit("failed", f"{type(error).__name__}: {error}")
        traceback.print_exc()
        return 1
    _mark_exit("completed")
    return 0


if __name__ == "__main__":
    # typeshed declares sys.stdout a TextIO; at start-up it is the interpreter's io.TextIOWrapper
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
    sys.exit(main(sys.argv[1:]))
