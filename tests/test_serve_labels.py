"""Version labels and the small registry: ``layerflow models label | list``, ``lf.deploy.set_label``,
labels resolved alike by a running server (a real process on a loopback port) and ``lf.predict``,
moved while a client sends requests."""

import json
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.deploy import BundleError, list_models, read_labels, set_label
from tests.test_serve import start_server


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled_models")
    keras.utils.set_random_seed(0)
    for width in (3, 2):  # version 1 gives 3 values per row, version 2 gives 2
        lf.export_model(
            keras.Sequential([keras.Input((4,)), keras.layers.Dense(width)]),
            folder,
            name="mlp",
            lineage={"run_id": f"run{width}", "metrics": {"val_loss": 0.25 * width}},
        )
    return folder


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "layerflow.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_cli_labels_and_lists_models_with_lineage(base):
    done = cli("models", "label", base, "mlp", 1, "stable")
    assert done.returncode == 0, done.stderr
    assert read_labels(base / "mlp") == {"stable": 1}
    assert not [p for p in (base / "mlp").iterdir() if p.name.startswith(".")]  # no temporary file left
    listed = cli("models", "list", base, "--json")
    assert listed.returncode == 0, listed.stderr
    (model,) = json.loads(listed.stdout)
    assert model["name"] == "mlp" and model["labels"] == {"stable": 1}
    assert [(v["version"], v["labels"], v["run_id"], v["metrics"]) for v in model["versions"]] == [
        (1, ["stable"], "run3", {"val_loss": 0.75}),
        (2, [], "run2", {"val_loss": 0.5}),
    ]
    table = cli("models", "list", base)
    assert table.returncode == 0 and "stable" in table.stdout and "run3" in table.stdout
    assert list_models(base) == json.loads(listed.stdout)


@pytest.mark.parametrize(
    "version, label, message",
    [
        (7, "stable", "has no version 7 to label 'stable'"),
        (1, "2", "is a number, which would read as a version"),
        (1, "bad-label", "is not valid; use letters, digits and '_'"),
        (1, "", "is not valid"),
    ],
)
def test_bad_labels_are_refused_and_leave_the_labels_file_as_it_was(base, version, label, message):
    before = read_labels(base / "mlp")
    with pytest.raises(BundleError, match=message):
        set_label(base, "mlp", version, label)
    done = cli("models", "label", base, "mlp", version, label)
    assert done.returncode == 2 and message.split(",")[0].split("'")[0] in done.stderr, done.stderr
    assert read_labels(base / "mlp") == before


def test_lf_predict_resolves_labels_as_the_server_does(base):
    set_label(base, "mlp", 2, "canary")
    x = np.zeros((1, 4), dtype="float32")
    (local,) = lf.predict(base, x, name="mlp", version="canary").values()  # version 2 has two outputs per row
    assert local.shape == (1, 2)
    with pytest.raises(BundleError, match="Unrecognized servable version label: 'gold'"):
        lf.predict(base, x, name="mlp", version="gold")
    process, url = start_server(base)
    try:
        (served,) = lf.predict(url, x, name="mlp", version="canary").values()
        assert served.shape == (1, 2)
        with pytest.raises(BundleError, match="400: Unrecognized servable version label"):
            lf.predict(url, x, name="mlp", version="gold")
        (base / "in.json").write_text(json.dumps({"instances": x.tolist()}))
        done = cli("predict", url, "--input", base / "in.json", "--name", "mlp", "--version", "canary")
        assert done.returncode == 0, done.stderr
        (printed,) = json.loads(done.stdout).values()
        assert np.shape(printed) == (1, 2)
    finally:
        (base / "in.json").unlink(missing_ok=True)
        process.terminate()
        process.wait(timeout=30)


def test_a_label_moved_while_a_client_sends_requests(base):
    """Every request answers 200 while ``stable`` moves between versions; each move is served
    within a second."""
    set_label(base, "mlp", 1, "stable")
    process, url = start_server(base)
    widths, failures, done = [], [], threading.Event()

    def ask():
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.is_set():
                reply = client.post("/v1/models/mlp/labels/stable:predict", json={"instances": [[0, 0, 0, 1]]})
                if reply.status_code == 200:
                    widths.append(len(reply.json()["predictions"][0]))
                else:
                    failures.append(reply.text)

    client = threading.Thread(target=ask)
    client.start()
    try:
        for version, width in [(2, 2), (1, 3), (2, 2), (1, 3)]:
            set_label(base, "mlp", version, "stable")
            moved = time.monotonic()
            with httpx.Client(base_url=url, timeout=30) as probe:
                while (
                    len(
                        probe.post("/v1/models/mlp/labels/stable:predict", json={"instances": [[0, 0, 0, 1]]}).json()[
                            "predictions"
                        ][0]
                    )
                    != width
                ):
                    assert time.monotonic() - moved < 1.5, f"label not followed within a second (to {version})"
                    time.sleep(0.05)
    finally:
        done.set()
        client.join(timeout=60)
        process.terminate()
        process.wait(timeout=30)
    assert not failures and set(widths) == {2, 3}
