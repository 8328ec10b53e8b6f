"""System metrics of a run: a real `layerflow run` samples its process tree; the UI draws the samples."""

from __future__ import annotations

import json
import re
import textwrap

import httpx
import pytest

import layerflow as lf
from layerflow.runs.system_metrics import SYSTEM_METRICS_FILE, read_system_metrics
from tests.conftest import layerflow_cli

pytest.importorskip("psutil")

# Busy for about 2 s in a child process too, holding ~80 MB, so the tree's CPU and memory show.
SCRIPT = """
    import subprocess, sys, time
    import layerflow as lf
    child = subprocess.Popen([sys.executable, "-c", "import time; t = time.time()\\nwhile time.time() - t < 2: pass"])
    block = bytearray(80 * 1024 * 1024)
    start = time.time()
    while time.time() - start < 2.5:
        sum(range(10000))
    child.wait()
    lf.log_metrics(1, loss=0.5)
    print("done", len(block))
"""


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sysmetrics")
    project, runs_dir = root / "project", root / "runs"
    project.mkdir()
    (project / "train.py").write_text(textwrap.dedent(SCRIPT))
    done = layerflow_cli(
        "run", "train.py", "--runs-dir", str(runs_dir), cwd=project, env={"LAYERFLOW_SYSTEM_METRICS_INTERVAL": "0.5"}
    )
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Run (\S+) completed", done.stderr).group(1)
    return {"runs_dir": runs_dir, "run_id": run_id, "run_dir": runs_dir / run_id}


def test_a_run_records_cpu_and_memory_of_its_process_tree(sampled_run):
    lines = (sampled_run["run_dir"] / SYSTEM_METRICS_FILE).read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    assert len(samples) >= 3, samples  # ~2.5 s at one sample each 0.5 s
    assert all(s["seconds"] >= 0 for s in samples)
    assert [s["seconds"] for s in samples] == sorted(s["seconds"] for s in samples)
    # The script holds 80 MiB and keeps a core busy; its child process is counted in the tree.
    assert max(s["memory_rss_mib"] for s in samples) > 80
    assert max(s["cpu_percent"] for s in samples) > 20  # one busy core = 100; the 2 cores are shared
    assert max(s["processes"] for s in samples) >= 2
    assert all(0 <= s["host_memory_percent"] <= 100 for s in samples)
    columns = read_system_metrics(sampled_run["run_dir"])
    assert columns["seconds"] == [s["seconds"] for s in samples]
    assert columns["memory_rss_mib"] == [s["memory_rss_mib"] for s in samples]


def test_reading_skips_a_half_written_line_and_thins_long_files(tmp_path):
    lines = [json.dumps({"time": i, "seconds": float(i), "cpu_percent": 1.0 * i}) for i in range(5000)]
    (tmp_path / SYSTEM_METRICS_FILE).write_text("\n".join(lines) + '\n{"seconds": 5000, "cpu_')
    columns = read_system_metrics(tmp_path, max_points=100)
    assert len(columns["seconds"]) == 100 and columns["seconds"][0] == 0.0
    assert columns["seconds"] == sorted(columns["seconds"]) and columns["seconds"][-1] < 5000
    assert read_system_metrics(tmp_path / "missing") == {}


def test_sampling_can_be_turned_off(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    done = layerflow_cli(
        "run",
        "train.py",
        "--runs-dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        env={"LAYERFLOW_SYSTEM_METRICS_INTERVAL": "0"},
    )
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Run (\S+) completed", done.stderr).group(1)
    assert not (tmp_path / "runs" / run_id / SYSTEM_METRICS_FILE).exists()


def test_the_run_page_charts_the_system_metrics(sampled_run, tmp_path):
    from tests.test_ui import CHROMIUM

    playwright_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    server = lf.ui(sampled_run["runs_dir"], port=0)
    try:
        url = f"{server.url.rstrip('/')}/runs/{sampled_run['run_id']}"
        assert 'id="system-charts"' in httpx.get(url).text
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(url)
            charts = page.locator("#system-charts .chart")
            measures = charts.evaluate_all("boxes => boxes.map(b => b.dataset.metric)")
            assert {"cpu_percent", "memory_rss_mib", "processes"} <= set(measures)
            assert page.locator("#system-charts canvas").count() == len(measures)
            samples = len(read_system_metrics(sampled_run["run_dir"])["seconds"])
            assert charts.first.get_attribute("data-points") == str(samples)
            assert page.locator("#charts canvas").count() == 1  # the metric chart (loss) is still its own
            page.screenshot(path=str(tmp_path / "run_page.png"))
            browser.close()
    finally:
        server.stop()
