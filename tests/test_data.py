"""lf.data: readers, transformations, bad input, and feeding Keras with real epoch boundaries."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import layerflow as lf
from layerflow import keras
from layerflow.data import CsvFormatError


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 1000
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 100, n), "city": rng.choice(["x", "y", "z"], n)})
    df["y"] = (df["a"] > 0).astype(int)
    return df


@pytest.fixture
def csv_files(tmp_path, frame):
    for i, (start, stop) in enumerate(((0, 334), (334, 667), (667, None))):
        frame.iloc[start:stop].to_csv(tmp_path / f"part-{i}.csv", index=False)
    return tmp_path


def test_csv_dataset_streams_every_row_with_types(csv_files, frame):
    ds = lf.data.csv_dataset(str(csv_files / "part-*.csv"), block_bytes=4096)
    assert len(list(ds.chunks())) > 3  # read in many small blocks, not at once
    read = ds.to_frame()
    assert len(read) == len(frame)
    assert np.allclose(read["a"], frame["a"], atol=1e-6) and read["a"].dtype == np.float32
    assert read["b"].dtype == np.int64 and list(read["city"][:3]) == list(frame["city"][:3])
    first = next(iter(ds))
    assert set(first) == {"a", "b", "city", "y"} and isinstance(first["city"], str)
    typed = lf.data.csv_dataset(
        csv_files / "part-0.csv", column_types={"b": "float", "city": "string"}, select_columns=["b", "city"]
    )
    batch = next(iter(typed.batch(10)))
    assert set(batch) == {"b", "city"} and batch["b"].dtype == np.float32 and len(batch["b"]) == 10


def test_missing_values_and_headerless_files(tmp_path):
    (tmp_path / "m.csv").write_text("a,city\n1.5,x\nNA,\n3,y\n")
    batch = next(iter(lf.data.csv_dataset(tmp_path / "m.csv", batch_size=3)))
    assert np.isnan(batch["a"][1]) and batch["city"][1] is None
    (tmp_path / "h.csv").write_text("1,2\n3,4\n")
    ds = lf.data.csv_dataset(tmp_path / "h.csv", header=False, column_names=["p", "q"])
    assert ds.to_frame()["q"].tolist() == [2, 4]
    with pytest.raises(ValueError, match="needs column_names"):
        lf.data.csv_dataset(tmp_path / "h.csv", header=False)
    with pytest.raises(ValueError, match="'complex' is not a known type"):
        lf.data.csv_dataset(tmp_path / "h.csv", column_types={"a": "complex"})


def test_malformed_rows_name_file_and_line_or_are_counted(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    with pytest.raises(CsvFormatError) as info:
        lf.data.csv_dataset(path).to_frame()
    assert f"{path}, line 4" in str(info.value) and "5,6,7" in str(info.value)
    ds = lf.data.csv_dataset(path, skip_malformed=True)
    assert ds.to_frame()["a"].tolist() == [1, 3, 8]
    assert ds.stats["malformed_rows_skipped"] == 1


def test_empty_files_and_patterns_matching_nothing(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.warns(UserWarning, match="empty.csv is empty"):
        ds = lf.data.csv_dataset(str(tmp_path / "*.csv"))
        assert ds.to_frame()["a"].tolist() == [1]
    assert ds.stats["empty_files"] == 1
    with pytest.raises(FileNotFoundError, match="No files match"):
        lf.data.csv_dataset(str(tmp_path / "nothing-*.csv"))


def test_parquet_text_frame_and_arrays(tmp_path, frame):
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "f.parquet", row_group_size=100)
    ds = lf.data.parquet_dataset(tmp_path / "f.parquet", columns=["a", "y"], rows_per_read=64)
    assert len(ds.to_frame()) == 1000 and len(list(ds.chunks())) == 16
    with pytest.raises(KeyError, match="no columns"):
        lf.data.parquet_dataset(tmp_path / "f.parquet", columns=["nope"]).to_frame()
    (tmp_path / "t.txt").write_text("first line\nsecond\n\nlast")
    assert [r["line"] for r in lf.data.text_line_dataset(tmp_path / "t.txt")] == ["first line", "second", "", "last"]
    assert lf.data.from_frame(frame).to_frame()["city"].tolist() == frame["city"].tolist()
    images = np.arange(5 * 2 * 2).reshape(5, 2, 2)
    batches = list(lf.data.from_arrays(images, np.arange(5)).batch(2))
    assert [len(b["x"]) for b in batches] == [2, 2, 1] and batches[0]["x"].shape == (2, 2, 2)
    with pytest.raises(ValueError, match="different numbers of rows"):
        lf.data.from_arrays(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        lf.data.from_frame([1, 2])


def test_transformations(frame):
    ds = lf.data.from_frame(frame, rows_per_chunk=64)
    assert [len(b["a"]) for b in ds.batch(300)] == [300, 300, 300, 100]
    assert [len(b["a"]) for b in ds.batch(300, drop_remainder=True)] == [300, 300, 300]
    assert (
        len(ds.take(10).to_frame()) == 10
        and ds.skip(990).to_frame()["a"].tolist() == frame["a"][990:].astype(np.float32).tolist()
    )
    assert len(list(ds.batch(100).take(3))) == 3 and len(list(ds.batch(100).skip(8))) == 2
    assert len(ds.repeat(3).to_frame()) == 3000
    positive = ds.filter(lambda row: row["a"] > 0).to_frame()
    assert len(positive) == int((frame["a"] > 0).sum()) and (positive["a"] > 0).all()
    doubled = ds.batch(100).map(lambda b: {**b, "a": b["a"] * 2}, num_parallel_calls=3)
    assert np.allclose(np.concatenate([b["a"] for b in doubled]), frame["a"] * 2, atol=1e-5)
    row_mapped = ds.take(5).map(lambda row: {"s": row["b"] + 1}).to_frame()
    assert row_mapped["s"].tolist() == (frame["b"][:5] + 1).tolist()
    assert ds.map(lambda row: {"s": row["b"]}).columns == ["s"]  # not the source's columns
    assert len(ds.prefetch(2).to_frame()) == 1000
    assert len(ds.batch(100).unbatch().to_frame()) == 1000


def test_shuffle_is_seeded_complete_and_reshuffles(frame):
    ds = lf.data.from_frame(frame, rows_per_chunk=50).shuffle(200, seed=7)
    first, second = ds.to_frame()["a"].to_numpy(), ds.to_frame()["a"].to_numpy()
    again = lf.data.from_frame(frame, rows_per_chunk=50).shuffle(200, seed=7).to_frame()["a"].to_numpy()
    assert np.array_equal(first, again)  # same seed, same order
    assert not np.array_equal(first, second)  # each pass reshuffles
    assert sorted(first) == sorted(frame["a"].astype(np.float32)) and not np.array_equal(first, frame["a"])
    batches = list(lf.data.from_frame(frame).batch(100).shuffle(5, seed=1))
    assert sorted(b["a"][0] for b in batches) == sorted(frame["a"].astype(np.float32)[::100])


def test_interleave_over_files(csv_files, frame):
    files = lf.data.file_list_dataset(str(csv_files / "part-*.csv"))
    mixed = files.interleave(lambda row: lf.data.csv_dataset(row["filename"], block_bytes=2048), cycle_length=3)
    read = mixed.to_frame()
    assert sorted(read["a"]) == sorted(frame["a"].astype(np.float32))
    assert not np.array_equal(read["a"].to_numpy(), frame["a"].astype(np.float32).to_numpy())


def test_bad_arguments_say_what_is_expected(frame):
    ds = lf.data.from_frame(frame)
    for call, message in [
        (lambda: ds.batch(0), "batch_size=0 must be a positive integer"),
        (lambda: ds.shuffle(-1), "buffer_size=-1"),
        (lambda: ds.take(-2), "count=-2"),
        (lambda: ds.repeat(-1), "count=-1"),
        (lambda: ds.map(str, num_parallel_calls=0), "num_parallel_calls=0"),
        (lambda: ds.batch(10).batch(5), "already batched"),
        (lambda: ds.prepare(y="y"), "call batch"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            call()
    with pytest.raises(KeyError, match=r"Columns \['label'\] are not in the data"):
        next(iter(ds.batch(10).prepare(y="label")))


def test_keras_trains_on_a_dataset_with_correct_epochs(csv_files):
    ds = lf.data.csv_dataset(str(csv_files / "part-*.csv"), batch_size=64, select_columns=["a", "b", "y"])
    prepared = ds.map(lambda b: (np.stack([b["a"], b["b"] / 100], 1).astype("float32"), b["y"]))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    steps = []

    class CountSteps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            steps.append(0)

        def on_train_batch_end(self, batch, logs=None):
            steps[-1] += 1

    history = model.fit(prepared, epochs=3, verbose=0, callbacks=[CountSteps()])
    assert steps == [16, 16, 16]  # 1000 rows / 64 = 15 full batches + 1 partial, every epoch
    assert history.history["accuracy"][-1] > 0.9
    assert model.evaluate(prepared, verbose=0)[1] > 0.9
    features_only = ds.prepare(x=["a", "b"]).map(lambda t: (np.stack([t[0]["a"], t[0]["b"] / 100], 1),))
    assert model.predict(features_only, verbose=0).shape == (1000, 1)
    with pytest.raises(TypeError, match="call .batch"):
        model.fit(lf.data.from_frame(pd.DataFrame({"a": [1.0]})), epochs=1, verbose=0)


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    return model


class _StepsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_steps_per_epoch_on_a_finite_dataset_trains_every_epoch_like_arrays(recwarn):
    x = np.arange(40, dtype=np.float32).reshape(40, 1) / 40
    rows = lf.data.from_arrays(x, 2 * x, rows_per_chunk=7)
    cases = {
        "batched": rows.batch(10).prepare(x="x", y="y"),
        "shuffled after batching": rows.batch(10).shuffle(4, seed=0).prepare(x="x", y="y"),
        "csv-like (unknown length)": rows.filter(lambda r: True).batch(10).prepare(x="x", y="y"),
    }
    arrays = _StepsPerEpoch()
    history = _tiny_model().fit(x, 2 * x, batch_size=10, steps_per_epoch=4, epochs=3, verbose=0, callbacks=[arrays])
    assert arrays.steps == [4, 4, 4] and len(history.history["loss"]) == 3
    for name, ds in cases.items():
        counter = _StepsPerEpoch()
        history = _tiny_model().fit(ds, steps_per_epoch=4, epochs=3, verbose=0, callbacks=[counter])
        assert counter.steps == [4, 4, 4], name
        assert len(history.history["loss"]) == 3, name
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]  # nothing ran out: no warning
    plain = _StepsPerEpoch()
    _tiny_model().fit(cases["csv-like (unknown length)"], epochs=2, verbose=0, callbacks=[plain])
    assert plain.steps == [4, 4] and not [w for w in recwarn if "ran out of data" in str(w.message)]


def test_data_running_out_inside_an_epoch_is_warned_about():
    x = np.arange(40, dtype=np.float32).reshape(40, 1) / 40
    ds = lf.data.from_arrays(x, 2 * x).filter(lambda r: True).batch(10).prepare(x="x", y="y")
    counter = _StepsPerEpoch()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        _tiny_model().fit(ds, steps_per_epoch=6, epochs=2, verbose=0, callbacks=[counter])
    assert counter.steps[0] == 4  # the 4 batches there are, then Keras's own (true) warning
    # the warning is not filtered away for anything else either (it was, process-wide)
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        _tiny_model().fit((b for b in [(x[:10], x[:10])]), steps_per_epoch=3, epochs=1, verbose=0)
