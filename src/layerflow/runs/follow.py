"""Following a file that another process appends to (a run's output.log and metrics.jsonl)."""

from __future__ import annotations

from pathlib import Path


class FileFollower:
    """Returns the complete lines appended to a file since the last call."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def rest(self) -> str:
        """Whatever follows the last newline (called once the writer has ended)."""
        self.new_lines()
        tail, self._partial = self._partial, b""
        return tail.decode(errors="replace")
