"""`layerflow run` in a terminal: Keras's live progress bar on the console, a clean output.log."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import textwrap

import pytest

from layerflow.runs.pty_tee import CleanLog

SCRIPT = """
    import numpy as np
    from layerflow import keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    x = np.ones((64, 4), "float32")
    model.fit(x, x[:, :1], epochs=2, batch_size=8)
    print("done ✓")
"""


@pytest.mark.slow
def test_progress_bar_on_the_terminal_and_a_clean_log(tmp_path):
    (tmp_path / "train.py").write_text(textwrap.dedent(SCRIPT))
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "layerflow.cli", "run", "train.py", "--runs-dir", "runs"],
        cwd=tmp_path,
        stdout=slave,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    console = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        console += chunk
    os.close(master)
    assert process.wait(timeout=120) == 0
    # The console got Keras's live display: the bar redrawn in place, with colours.
    assert b"\x1b[1m1/8\x1b[0m" in console and b"\x1b[1m8/8\x1b[0m" in console and b"\x08\x08\x08" in console
    (run_dir,) = (tmp_path / "runs").glob("2*")
    log = (run_dir / "output.log").read_text()
    # The log holds each line once, as it ended: no redraw frames, colour codes or carriage returns.
    assert "\r" not in log and "\x1b" not in log and "\b" not in log
    lines = log.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and lines[-1] == "done ✓"
    assert lines[1].startswith("8/8 ") and "loss:" in lines[1] and "1/8" not in log


def test_clean_log_joins_chunks_split_anywhere():
    stream = io.BytesIO()
    log = CleanLog(stream)
    data = "1/3 [=>  ]\r2/3 [==> ]\r3/3 [===] ✓\nnext\x1b[1m bold\x1b[0m\nab\bc\nunfinished".encode()
    for i in range(0, len(data), 3):  # splits lines, escape codes and the UTF-8 of ✓
        log.write(data[i : i + 3])
    log.close()
    assert stream.getvalue().decode() == "3/3 [===] ✓\nnext bold\nac\nunfinished"


def test_without_a_terminal_the_output_is_logged_unchanged(tmp_path, runs_dir):
    import layerflow as lf

    script = tmp_path / "p.py"
    script.write_text("import sys\nsys.stdout.write('a\\rb\\n')\n")
    record = lf.training_run(script, echo=False)
    assert (runs_dir / record["id"] / "output.log").read_bytes() == b"a\rb\n"
