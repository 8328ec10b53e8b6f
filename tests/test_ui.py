"""`layerflow ui`: real runs made by `layerflow run`, the real app on a loopback port, pages in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import layerflow as lf
from layerflow.runs import files
from tests.conftest import layerflow_cli
from tests.test_serve import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)

SCRIPT = """
    import time
    import layerflow as lf
    from helper import scale
    FLAGS = lf.flags(lr=0.1, units=4)
    for epoch in range(1, 4):
        lf.log_metrics(epoch, loss=scale(FLAGS.lr) / epoch + 1 / FLAGS.units, val_loss=1.5 / epoch,
                       mae=0.5 / FLAGS.units)
        print(f"epoch {epoch} loss {1 / epoch:.3f}")
    lf.write_run_data("predictions.csv", "id,p\\n1,0.5\\n")
"""
HELPER_V1 = "def scale(lr):\n    return 1.0 + lr\n"
HELPER_V2 = "def scale(lr):\n    return 2.0 * lr  # changed between runs\n"


def make_run(project: Path, runs_dir: Path, *args: str) -> str:
    done = layerflow_cli("run", "train.py", "--runs-dir", str(runs_dir), *args, cwd=project)
    assert done.returncode == 0, done.stderr
    return re.search(r"Run (\S+) completed", done.stderr).group(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """Two runs whose helper.py differs, a 2-trial tuning run, and a run with a corrupt run.json."""
    root = tmp_path_factory.mktemp("ui")
    project, runs_dir = root / "project", root / "runs"
    project.mkdir()
    (project / "train.py").write_text(textwrap.dedent(SCRIPT))
    (project / "helper.py").write_text(HELPER_V1)
    first = make_run(project, runs_dir, "--flag", "lr=0.2")
    (project / "helper.py").write_text(HELPER_V2)
    second = make_run(project, runs_dir, "--flag", "lr=0.3", "--flag", "units=8")
    tuned = layerflow_cli("tune", "train.py", "--grid", "units=2,16", "--runs-dir", str(runs_dir), cwd=project)
    assert tuned.returncode == 0, tuned.stderr
    frame = lf.ls_runs(runs_dir)
    trials = frame[frame["prop_tuning_id"].notna()]
    corrupt = "20200101T000000-000000-dead"
    shutil.copytree(runs_dir / first, runs_dir / corrupt)
    (runs_dir / corrupt / "run.json").write_text('{"id": "20200101T000000-000000-dead", "status": ')
    return {
        "runs_dir": runs_dir,
        "project": project,
        "first": first,
        "second": second,
        "corrupt": corrupt,
        "tuning_id": trials["prop_tuning_id"].iloc[0],
        "trials": sorted(trials["id"]),
    }


@pytest.fixture(scope="module")
def server(store):
    running = lf.ui(store["runs_dir"], port=0)
    yield running.url.rstrip("/")
    running.stop()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    tab.screenshot(path=str(tmp_path / "page.png"))  # a test artefact, under pytest's tmp folder
    context.close()


@pytest.mark.slow
def test_runs_table_lists_runs_sorts_filters_and_groups_tuning(server, store, page):
    page.goto(server + "/")
    listed = page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert store["first"] in listed and store["second"] in listed and store["corrupt"] in listed
    # The two trials show as one row of their tuning run, linked to its page.
    assert len([r for r in listed if r in store["trials"]]) == 1
    assert page.locator(f'a[href="/tuning/{store["tuning_id"]}"]').first.inner_text() == store["tuning_id"]
    assert "(2 trials)" in page.locator("#runs-table").inner_text()
    assert page.locator(f'tr[data-run="{store["corrupt"]}"] .status').inner_text() == "corrupt"
    assert page.locator(f'tr[data-run="{store["first"]}"] .status-completed').count() == 1
    # Sorting by a flag column from its header, largest first.
    page.locator("th a", has_text="flag_lr").click()
    page.wait_for_url(re.compile("order=flag_lr"))
    order = page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert order.index(store["second"]) < order.index(store["first"])
    # Filtering with the `layerflow runs --filter` language.
    page.fill("input[name=filter]", "flag_units == 8 and status == 'completed'")
    page.click("form.filter button[type=submit]")
    page.wait_for_url(re.compile("filter="))
    assert page.locator("#runs-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)") == [
        store["second"]
    ]
    # Selecting two runs and comparing them.
    page.goto(server + "/?group=0")
    page.check(f'input[value="{store["first"]}"]')
    page.check(f'input[value="{store["second"]}"]')
    page.click("text=Compare selected")
    page.wait_for_url(re.compile("/compare"))
    compared = page.locator("#compared").inner_text()
    assert store["first"] in compared and store["second"] in compared


def test_table_paging_and_a_bad_filter(server, store):
    every = httpx.get(server + "/?group=0&size=25&page=99")
    assert every.status_code == 200 and "5 runs" in every.text and "page 1 of 1" in every.text
    assert "4 runs" in httpx.get(server + "/").text  # the 2 trials of the tuning run are one row
    bad = httpx.get(server + "/", params={"filter": "flag_lr >"})
    assert bad.status_code == 400
    assert "is not an expression" in bad.text and "flag_lr" in bad.text
    unknown_column = httpx.get(server + "/", params={"filter": "flag_nope > 1"})
    assert unknown_column.status_code == 400 and "No column &#39;flag_nope&#39;" in unknown_column.text
    unknown = httpx.get(server + "/", params={"order": "flag_nope"})
    assert unknown.status_code == 400 and "Cannot order by" in unknown.text


@pytest.mark.parametrize(
    "expression",
    [
        "flag_lr > 0.15",
        "flag_units == 8 and status == 'completed'",
        "flag_lr != 0.2",
        "not (flag_units > 4)",
        "flag_units in [2, 16]",
        "flag_units not in (2, 16)",
        "0.1 <= flag_lr < 0.3",
        "metric_loss * 2 > flag_lr + 1",
        "(flag_units == 2) | (flag_lr == 0.3)",
        "~(flag_units == 2)",
        "status == 'corrupt' or metric_loss < 0.3",
        "script.str.endswith('train.py') and flag_units > 4",  # not SQL: evaluated by pandas
    ],
)
def test_table_filters_as_layerflow_runs_does(store, expression):
    from layerflow.ui.table import RunTable

    table = RunTable(store["runs_dir"])
    shown = table.page(filter=expression, size=200, group_tuning=False)
    expected = lf.ls_runs(store["runs_dir"], filter=expression)
    assert [r["id"] for r in shown.rows] == list(expected["id"]), expression
    ordered = table.page(filter=expression, order="metric_loss", decreasing=True, size=200, group_tuning=False)
    by_pandas = lf.ls_runs(store["runs_dir"], filter=expression, order="metric_loss", decreasing=True)
    assert [r["id"] for r in ordered.rows] == list(by_pandas["id"]), expression


def _listed(html: str) -> list[str]:
    return re.findall(r'<tr[^>]* data-run="([^"]+)"', html)


def test_the_filter_knows_every_column_of_layerflow_runs(server, store, tmp_path):
    frame = lf.ls_runs(store["runs_dir"])
    for column in frame.columns:  # run_dir included: `layerflow runs` shows it, the index does not hold it
        reply = httpx.get(
            server + "/", params={"filter": f"{column} == {column} or {column} != {column}", "group": "0", "size": 100}
        )
        assert reply.status_code == 200, (column, reply.text[-500:])
        assert sorted(_listed(reply.text)) == sorted(frame["id"]), column
    first_dir = str(store["runs_dir"] / store["first"])
    assert frame.set_index("id").loc[store["first"], "run_dir"] == first_dir
    for expression in (f"run_dir == {first_dir!r}", f"run_dir.str.endswith({store['first']!r})"):  # SQL, then pandas
        reply = httpx.get(server + "/", params={"filter": expression, "group": "0"})
        assert reply.status_code == 200 and _listed(reply.text) == [store["first"]], (expression, reply.text[-500:])
    ordered = httpx.get(server + "/", params={"order": "run_dir", "desc": "1", "group": "0"})
    assert ordered.status_code == 200 and _listed(ordered.text) == list(
        frame.sort_values("run_dir", ascending=False)["id"]
    )
    unknown = httpx.get(server + "/", params={"filter": "run_folder == 'x'"})
    assert unknown.status_code == 400 and "No column &#39;run_folder&#39;" in unknown.text and "run_dir" in unknown.text
    # A runs folder with no run yet takes the same filters (its table has the same columns, no rows).
    (tmp_path / "empty").mkdir()
    empty = lf.ui(tmp_path / "empty", port=0)
    try:
        for expression in ("status == 'completed'", f"run_dir == {first_dir!r}", "epochs > 1 and error != ''"):
            reply = httpx.get(empty.url.rstrip("/") + "/", params={"filter": expression})
            assert reply.status_code == 200 and _listed(reply.text) == [], (expression, reply.text[-500:])
    finally:
        empty.stop()


def test_comparison_shows_curves_flag_differences_and_source_diff(server, store, page):
    page.goto(f"{server}/compare?runs={store['first']}&runs={store['second']}")
    diff = page.locator('.source-diff[data-file="helper.py"]').inner_text()
    assert "-    return 1.0 + lr" in diff and "+    return 2.0 * lr  # changed between runs" in diff
    assert page.locator('.source-diff[data-file="train.py"]').count() == 0  # unchanged files are not listed
    flags = page.locator("#flag-differences").inner_text()
    assert "lr" in flags and "0.2" in flags and "0.3" in flags and "units" in flags
    assert page.locator("#charts canvas").count() >= 1
    assert int(page.locator("#charts .chart").first.get_attribute("data-points")) == 3


def test_run_page_summary_output_code_and_data(server, store, page):
    page.goto(f"{server}/runs/{store['second']}")
    assert page.locator("#status").inner_text() == "completed"
    assert "0.3" in page.locator("#flags").inner_text()
    assert page.locator("#charts canvas").count() == 2  # two panels: loss with val_loss, and mae
    page.click('a[data-tab="output"]')
    assert "epoch 3 loss" in page.locator("#log").inner_text()
    page.click('a[data-tab="code"]')
    assert page.locator("#code .code .kn", has_text="import").count() >= 1  # highlighted by Pygments
    page.click('a[data-tab="data"]')
    link = page.locator("#tab-data a", has_text="predictions.csv").get_attribute("href")
    assert httpx.get(server + link).text == "id,p\n1,0.5\n"
    # latest resolves to the newest run
    assert httpx.get(server + "/runs/latest", follow_redirects=True).status_code == 200


def test_tuning_page_marks_the_best_trial(server, store, page):
    page.goto(f"{server}/tuning/{store['tuning_id']}?metric=metric_loss&mode=min")
    best = page.locator("#best").inner_text()
    assert best in store["trials"]
    assert page.locator("tr.best").get_attribute("data-run") == best
    frame = lf.ls_runs(store["runs_dir"])
    trials = frame[frame["id"].isin(store["trials"])]
    assert best == trials.sort_values("metric_loss")["id"].iloc[0]
    assert page.locator("#scatter canvas").count() == 1  # units is the flag that varies


def test_tuning_page_minimises_errors_as_tune_does(server, store):
    # No mode given: an error metric (mae) is minimised, as `layerflow tune` orders it.
    shown = httpx.get(f"{server}/tuning/{store['tuning_id']}?metric=metric_mae").text
    frame = lf.ls_runs(store["runs_dir"])
    trials = frame[frame["id"].isin(store["trials"])]
    lowest = trials.sort_values("metric_mae")["id"].iloc[0]
    assert re.search(r'id="best"[^>]*>\s*' + re.escape(lowest), shown), shown[:2000]


def test_bad_input_pages(server, store, tmp_path):
    corrupt = httpx.get(f"{server}/runs/{store['corrupt']}")
    assert corrupt.status_code == 200
    assert 'id="problems"' in corrupt.text and "run.json is not valid JSON" in corrupt.text
    unknown = httpx.get(f"{server}/runs/20990101T000000-000000-beef")
    assert unknown.status_code == 404 and "No run" in unknown.text
    assert httpx.get(f"{server}/runs/..%2f..%2fetc").status_code == 404
    assert httpx.get(f"{server}/no/such/page").status_code == 404
    for path in ("..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "source/../../x"):
        refused = httpx.get(f"{server}/runs/{store['first']}/files/{path}")
        assert refused.status_code in (403, 404) and "root:" not in refused.text, path
    assert (
        httpx.get(f"{server}/runs/{store['first']}/files/source/..%2f..%2f{store['second']}%2frun.json").status_code
        == 403
    )
    served = httpx.get(f"{server}/runs/{store['first']}/files/run.json")  # shown, never run as a page of the UI
    assert served.status_code == 200 and served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{server}/compare?runs={store['first']}").status_code == 400
    assert httpx.get(f"{server}/compare?runs={store['first']}&runs=nope1234").status_code == 404
    assert httpx.get(f"{server}/tuning/nope").status_code == 404
    # A runs folder that does not exist, and one that is empty: a page saying how to make a run.
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        other = lf.ui(folder, port=0)
        try:
            shown = httpx.get(other.url)
            assert shown.status_code == 200 and "layerflow run train.py" in shown.text
        finally:
            other.stop()
    assert not (tmp_path / "missing").exists()  # read-only: the UI made nothing


def test_a_run_being_written_shows_what_is_there(server, store):
    folder = store["runs_dir"] / "20300101T000000-000000-cafe"
    folder.mkdir()
    try:
        (folder / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "lo')
        shown = httpx.get(f"{server}/runs/{folder.name}")
        assert shown.status_code == 200
        assert re.search(r'"loss": \[0\.5\]', shown.text)  # the half-written line is left for later
        # The table shows a new run folder within a few seconds, without a restart.
        deadline = time.monotonic() + 20
        while folder.name not in httpx.get(f"{server}/?group=0").text:
            assert time.monotonic() < deadline, "the new run never appeared in the table"
            time.sleep(0.5)
    finally:
        shutil.rmtree(folder)


def test_huge_log_is_paged_with_flat_memory(tmp_path):
    runs_dir = tmp_path / "runs"
    folder = runs_dir / "20260101T000000-000000-0b0b"
    folder.mkdir(parents=True)
    files.write_json(folder / "run.json", {"id": folder.name, "status": "completed", "script": "train.py"})
    line = b"step " + b"x" * 90 + b"\n"
    with open(folder / "output.log", "wb") as log:
        block = line * 10_000
        for _ in range(300):  # ~290 MB
            log.write(block)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "layerflow.ui", "--runs-dir", str(runs_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = wait_for(f"http://127.0.0.1:{port}")
        before = rss_mb(process.pid)
        page = httpx.get(f"{base}/runs/{folder.name}", timeout=30)
        assert page.status_code == 200 and len(page.text) < 1_000_000
        for offset in (0, 100_000_000, 250_000_000):
            window = httpx.get(f"{base}/runs/{folder.name}/output", params={"offset": offset, "format": "json"}).json()
            assert window["offset"] == offset and window["size"] > 280_000_000
            assert 0 < len(window["text"]) <= 256 * 1024
        assert rss_mb(process.pid) - before < 30
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def test_token_is_required(store, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "ui",
            "--runs-dir",
            str(store["runs_dir"]),
            "--port",
            str(port),
            "--token",
            "s3cret",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = wait_for(f"http://127.0.0.1:{port}")
        assert httpx.get(base + "/").status_code == 401
        assert httpx.get(base + "/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base + "/static/ui.js").status_code == 401
        assert httpx.get(base + "/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        with httpx.Client(base_url=base, follow_redirects=True) as client:
            assert client.get("/?token=s3cret").status_code == 200  # sets a cookie for the next pages
            assert client.get(f"/runs/{store['first']}").status_code == 200
        assert httpx.get(base + "/?token=wrong").status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def test_ui_refuses_bad_arguments(store):
    with pytest.raises(lf.LayerflowError, match="port=-1"):
        lf.ui(store["runs_dir"], port=-1)
    with pytest.raises(ValueError, match="host"):
        lf.ui(store["runs_dir"], host="")
    taken = lf.ui(store["runs_dir"], port=0)
    try:
        port = int(taken.url.rsplit(":", 1)[1].strip("/"))
        done = layerflow_cli("ui", "--runs-dir", str(store["runs_dir"]), "--port", str(port), cwd=store["project"])
        assert done.returncode == 2 and "taken" in done.stderr
    finally:
        taken.stop()


KERAS_SCRIPT = """
    import time
    import numpy as np
    import layerflow as lf
    from layerflow import keras
    FLAGS = lf.flags(epochs=6)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    slow = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: time.sleep(1.0))
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    model.fit(x, x[:, :1], epochs=FLAGS.epochs, validation_split=0.25, verbose=2, callbacks=[slow])
    model.save("model.keras")
"""


@pytest.mark.slow
@needs_chromium
def test_live_run_chart_gains_points_while_it_trains(tmp_path, page):
    project, runs_dir = tmp_path / "live", tmp_path / "runs"
    project.mkdir()
    (project / "train.py").write_text(textwrap.dedent(KERAS_SCRIPT))
    browser_log = tmp_path / "opened.txt"
    opener = tmp_path / "open-url"
    opener.write_text(f'#!/bin/sh\necho "$1" >> {browser_log}\n')
    opener.chmod(0o755)
    port = free_port()
    env = {**os.environ, "BROWSER": str(opener)}
    training = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "layerflow.cli",
            "run",
            "train.py",
            "--runs-dir",
            str(runs_dir),
            "--view",
            "--view-port",
            str(port),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ui_pid = None
    try:
        deadline = time.monotonic() + 60
        while not (browser_log.exists() and browser_log.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        url = browser_log.read_text().strip()
        assert re.match(rf"http://127\.0\.0\.1:{port}/runs/\d{{8}}T\d{{6}}-\d{{6}}-[0-9a-f]{{4}}\?wait=1$", url), url
        ui_pid = httpx.get(f"http://127.0.0.1:{port}/health").json()["pid"]
        page.goto(url)
        page.wait_for_selector("#charts", timeout=60_000)
        page.wait_for_function("document.getElementById('status').textContent === 'running'", timeout=60_000)
        seen = [int(page.locator("#charts").get_attribute("data-epochs"))]
        for _ in range(120):
            now = int(page.locator("#charts").get_attribute("data-epochs"))
            if now != seen[-1]:
                seen.append(now)
            if page.evaluate("document.body.dataset.runStatus") == "completed":
                break
            time.sleep(0.25)
        assert page.evaluate("document.body.dataset.runStatus") == "completed"
        assert seen[-1] == 6 and len(seen) >= 3, seen  # points arrived in steps, without a reload
        assert page.locator("#status").inner_text() == "completed"
        assert "Epoch 6/6" in page.locator("#log").inner_text()
        assert int(page.locator("#charts .chart").first.get_attribute("data-points")) == 6
        assert training.wait(timeout=120) == 0
        run_id = url.rsplit("/", 1)[1].split("?")[0]
        page.goto(f"http://127.0.0.1:{port}/runs/{run_id}?tab=model")
        assert f"layerflow export {run_id} --out models/" in page.locator("#export-command").inner_text()
        assert page.locator("#tab-model a", has_text="model.keras").count() == 1
        assert "Total params" in page.locator("#tab-model").inner_text()  # the model summary
    finally:
        if training.poll() is None:
            training.kill()
        if ui_pid:
            os.kill(ui_pid, signal.SIGINT)


def wait_for(base: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/health", timeout=1)
            return base
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"no UI at {base}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_health_names_the_runs_folder(server, store):
    health = httpx.get(server + "/health").json()
    assert health["runs_dir"] == str(store["runs_dir"]) and health["pid"] == os.getpid()
    assert set(health) == {"status", "runs_dir", "pid"}


def test_reports_share_the_charts_and_make_no_network_request(store, page, tmp_path):
    report = lf.view_run(store["second"], runs_dir=store["runs_dir"], out=tmp_path / "run.html", browse=False)
    comparison = lf.compare_runs(
        store["first"], store["second"], runs_dir=store["runs_dir"], out=tmp_path / "compare.html", browse=False
    )
    shared = (Path(lf.__file__).parent / "runs" / "templates" / "assets" / "charts.js").read_text()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    for path, panels in ((report, 2), (comparison, 2)):
        assert shared.splitlines()[-3] in path.read_text()  # the UI's chart code, inlined
        requests.clear()
        page.goto(path.as_uri())
        assert requests == [path.as_uri()], requests
        assert page.locator("#charts canvas").count() == panels
        assert int(page.locator("#charts .chart").first.get_attribute("data-points")) == 3


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


def test_file_paths_leading_out_of_the_run_folder_are_refused(tmp_path):
    from layerflow.ui import run_files

    run_dir = tmp_path / "runs" / "20260101T000000-000000-0a1b"
    (run_dir / "plots").mkdir(parents=True)
    (run_dir / "plots" / "history.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("secret")
    (run_dir / "plots" / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert run_files.run_file(run_dir, "plots/history.png") == (run_dir / "plots" / "history.png").resolve()
    for path in ("../../secret.txt", "plots/../../../secret.txt", str(tmp_path / "secret.txt"), "plots/link.txt"):
        with pytest.raises(run_files.UnsafePathError):
            run_files.run_file(run_dir, path)
    with pytest.raises(FileNotFoundError):
        run_files.run_file(run_dir, "plots/none.png")
