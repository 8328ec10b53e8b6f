"""The script's console in a tracked run: a pseudo-terminal when the user's console is one.

``python train.py`` in a terminal shows Keras's live progress bar; so does ``layerflow run``,
which gives the script a pseudo-terminal for its output when its own stdout is a terminal
and echoes what the script prints as it comes. ``output.log`` gets the text as a reader sees
it instead of every redraw: each line once, with carriage-return frames, backspaces and
colour codes resolved. Off a terminal (a pipe, a notebook, the tuner) the script writes to
a pipe and its bytes are logged unchanged, as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from layerflow.runs.report import clean_console_text


def _console_is_terminal() -> bool:
    try:
        return os.name == "posix" and sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return False


class CleanLog:
    """Writes console bytes to a log as complete, cleaned lines (redraws of a line collapse into its last frame).

    Args:
        stream: the binary log file.

    Example:
        >>> log = CleanLog(open("output.log", "ab"))
        >>> log.write(b"1/3 [=>  ]\\r2/3 [==> ]\\r3/3 [===]\\n")   # writes b"3/3 [===]\\n"
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.pending = b""

    def write(self, chunk: bytes) -> None:
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        if lines:
            text = clean_console_text(b"\n".join(lines).decode(errors="replace"))
            self.stream.write(text.encode() + b"\n")
            self.stream.flush()

    def close(self) -> None:
        if self.pending:
            self.stream.write(clean_console_text(self.pending.decode(errors="replace")).encode())
            self.pending = b""
        self.stream.flush()


class ScriptConsole:
    """Where the script's output goes: a pseudo-terminal (``terminal=True``) or a pipe.

    Args:
        echo: the script's output is also shown on this console.

    Example:
        >>> console = ScriptConsole(echo=True)
        >>> process = subprocess.Popen(["python", "train.py"], **console.popen_args())
        >>> console.started()
        >>> console.pump(process, Path("output.log"), print_chunk)
    """

    def __init__(self, echo: bool):
        self.terminal = echo and _console_is_terminal()
        self._master = self._slave = None
        if self.terminal:
            import pty

            self._master, self._slave = pty.openpty()
            _copy_window_size(sys.stdout.fileno(), self._slave)

    def popen_args(self) -> dict[str, Any]:
        """``stdout``/``stderr`` arguments of ``subprocess.Popen`` for the script."""
        if self.terminal:
            return {"stdout": self._slave, "stderr": self._slave}
        return {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}

    def started(self) -> None:
        """Call once the script's process exists: only the script keeps the terminal's other end."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def pump(self, process: subprocess.Popen, log_path: Path, echo: Callable[[bytes], None] | None) -> None:
        """Copies the script's output into ``log_path`` (and to ``echo``) until the script closes it."""
        if self.terminal:
            assert self._master is not None, "open() gives the terminal its master end"
            fd = self._master
        else:
            assert process.stdout is not None, "the script's output is piped when there is no terminal"
            fd = process.stdout.fileno()
        with open(log_path, "ab") as stream:
            log = CleanLog(stream) if self.terminal else None
            try:
                while chunk := _read(fd):
                    if log is not None:
                        log.write(chunk)
                    else:
                        stream.write(chunk)
                        stream.flush()
                    if echo is not None:
                        echo(chunk)
            finally:
                if log is not None:
                    log.close()
                if self.terminal:
                    os.close(fd)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the script closed its terminal (it ended)
        return b""


def _copy_window_size(source: int, target: int) -> None:
    """The script's terminal as wide as the user's, so progress bars fit on one line."""
    try:
        import fcntl
        import termios

        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass
