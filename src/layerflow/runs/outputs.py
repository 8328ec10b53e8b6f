"""Files a script writes in its working directory during a run, kept in the run folder (as tfruns does).

Before the script starts, the working directory's files are listed with their size and
modification time; when it ends, every file that is new or changed is copied into the
run's ``outputs/`` folder under its relative path. Listing follows the source snapshot's
rules (``.gitignore`` honoured, the runs folder and ``NEVER_COPIED`` folders left out), and
files over ``MAX_OUTPUT_FILE_BYTES``, or past ``MAX_OUTPUT_TOTAL_BYTES`` in all, are left
out and listed, so that a stray dataset never fills the runs folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from layerflow.runs import files as f
from layerflow.runs.source import TooManyFiles, candidate_files

OUTPUTS_DIR = "outputs"
MAX_OUTPUT_FILE_BYTES = 50 * 1024 * 1024
MAX_OUTPUT_TOTAL_BYTES = 200 * 1024 * 1024
# A working directory listing more files than this (a home folder) is not watched: listing it
# before and after every run would cost more than the run.
MAX_WATCHED_FILES = 20_000

State = dict[str, tuple[int, int]]


def working_files(folder: Path, exclude: list[Path]) -> State | None:
    """The files under ``folder`` (relative path -> (mtime_ns, size)), as the source snapshot lists
    them; None when it holds more than ``MAX_WATCHED_FILES``."""
    try:
        paths = candidate_files(folder, exclude, limit=MAX_WATCHED_FILES)
    except TooManyFiles:
        return None
    state: State = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        state[path.relative_to(folder).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return state


def keep_outputs(before: State | None, folder: Path, run_dir: Path, exclude: list[Path]) -> dict[str, Any]:
    """Copies the files new or changed under ``folder`` since ``before`` into ``run_dir/outputs``.

    A model the script saved (already copied into ``model/`` by the Keras hook) is not copied twice.

    Returns:
        ``{"outputs": [kept paths], "outputs_skipped": [paths over the size caps]}``, or a note
        saying why nothing was kept.
    """
    after = working_files(folder, exclude)
    if before is None or after is None:
        return {
            "outputs": [],
            "outputs_note": f"the working directory {folder} holds over {MAX_WATCHED_FILES} "
            "files, so files written there were not kept",
        }
    kept: list[str] = []
    skipped: list[str] = []
    total = 0
    saved_models = {p.name: p.stat().st_size for p in (run_dir / f.MODEL_DIR).glob("*") if p.is_file()}
    for relative, (mtime, size) in sorted(after.items()):
        if before.get(relative) == (mtime, size) or saved_models.get(Path(relative).name) == size:
            continue
        if size > MAX_OUTPUT_FILE_BYTES or total + size > MAX_OUTPUT_TOTAL_BYTES:
            skipped.append(relative)
            continue
        target = run_dir / OUTPUTS_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(folder / relative, target)
        except OSError:  # removed or unreadable since listed
            continue
        kept.append(relative)
        total += size
    return {"outputs": kept, "outputs_skipped": skipped}
