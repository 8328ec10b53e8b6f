"""The one reader of a run's source snapshot (runs/source_files.py), used by the reports and by layerflow ui."""

from __future__ import annotations

import pytest

from layerflow.errors import MissingFileError
from layerflow.runs import files as f
from layerflow.runs import report
from layerflow.runs import source_files as sources
from layerflow.ui import run_files


@pytest.fixture
def run_dir(tmp_path):
    root = tmp_path / "run"
    snapshot = root / f.SOURCE_DIR
    (snapshot / "pkg").mkdir(parents=True)
    (snapshot / "train.py").write_text("print('hi')\n")
    (snapshot / "pkg" / "big.py").write_text("x" * (sources.MAX_SOURCE_BYTES + 10))
    (snapshot / "weights.bin").write_bytes(b"\0\1\2" * 10)
    (tmp_path / "outside.py").write_text("secret\n")
    (snapshot / "link.py").symlink_to(tmp_path / "outside.py")
    return root


def test_the_report_and_the_ui_read_sources_through_one_owner():
    assert report.read_sources is sources.read_sources
    assert run_files.read_source is sources.read_source and run_files.source_files is sources.source_files
    assert run_files.UnsafePathError is sources.UnsafePathError and run_files.run_file is sources.run_file


def test_sources_are_read_bounded_binary_left_out_and_never_outside_the_run(run_dir):
    assert sources.source_files(run_dir) == ["link.py", "pkg/big.py", "train.py", "weights.bin"]
    big = sources.read_source(run_dir, "pkg/big.py")
    assert big == "x" * sources.MAX_SOURCE_BYTES + sources.CUT_MARK
    assert sources.read_source(run_dir, "weights.bin") is None
    with pytest.raises(sources.UnsafePathError, match="leads outside"):
        sources.read_source(run_dir, "link.py")
    with pytest.raises(sources.UnsafePathError):
        sources.read_source(run_dir, "../../outside.py")
    with pytest.raises(MissingFileError, match="no file 'nope.py'"):
        sources.read_source(run_dir, "nope.py")
    # what a report shows: every text file, as the UI reads it; the binary file and the link out left out
    assert sources.read_sources(run_dir) == {"pkg/big.py": big, "train.py": "print('hi')\n"}


def test_a_snapshot_of_many_files_is_listed_up_to_the_limit(tmp_path, monkeypatch):
    snapshot = tmp_path / f.SOURCE_DIR
    snapshot.mkdir()
    for i in range(5):
        (snapshot / f"m{i}.py").write_text("")
    monkeypatch.setattr(sources, "MAX_SOURCE_FILES", 3)
    assert sources.source_files(tmp_path) == ["m0.py", "m1.py", "m2.py"]
    assert sources.source_files(tmp_path / "no-run") == []
