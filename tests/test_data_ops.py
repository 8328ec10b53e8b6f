"""lf.data operations: combining, numbering, sharding, windows, padding, folding, lengths and caching."""

import numpy as np
import pandas as pd
import pytest

import layerflow as lf
from layerflow.data import DatasetArgumentError, DatasetKindError, UnknownLengthError


def values(ds, column="value"):
    return [int(row[column]) for row in ds]


def test_range_dataset_and_len():
    assert values(lf.data.range_dataset(5)) == [0, 1, 2, 3, 4]
    assert values(lf.data.range_dataset(1, 10, 3)) == [1, 4, 7]
    assert values(lf.data.range_dataset(5, 0, -2)) == [5, 3, 1]
    assert len(lf.data.range_dataset(1, 10, 3)) == 3
    big = lf.data.range_dataset(200_000)
    assert len(list(big.chunks())) == 4 and len(big) == 200_000  # generated a block at a time
    with pytest.raises(DatasetArgumentError, match="step must not be zero"):
        lf.data.range_dataset(0, 5, 0)
    with pytest.raises(DatasetArgumentError, match="stop='9' must be an integer"):
        lf.data.range_dataset(0, "9")


def test_len_where_known_and_a_clear_error_where_not(tmp_path):
    ds = lf.data.range_dataset(10)
    assert len(ds.batch(4)) == 3 and len(ds.batch(4, drop_remainder=True)) == 2
    assert len(ds.take(3)) == 3 and len(ds.take(30)) == 10 and len(ds.skip(4)) == 6 and len(ds.skip(40)) == 0
    assert len(ds.repeat(3)) == 30 and len(ds.shuffle(4, seed=0)) == 10 and len(ds.map(lambda r: r)) == 10
    assert len(ds.batch(4).prepare(x="value")) == 3 and len(ds.prefetch()) == 10 and len(ds.cache()) == 10
    assert len(lf.data.from_frame(pd.DataFrame({"a": [1, 2]}))) == 2
    assert len(lf.data.from_arrays(np.zeros((7, 3)))) == 7
    for unknown in (ds.filter(lambda r: True), ds.repeat(), ds.unique(), ds.take_while(lambda r: True)):
        with pytest.raises(UnknownLengthError, match="not known without reading it"):
            len(unknown)
    (tmp_path / "a.csv").write_text("a\n1\n")
    with pytest.raises(TypeError, match="not known without reading it"):  # also a TypeError, as len() expects
        len(lf.data.csv_dataset(tmp_path / "a.csv"))


def test_concatenate_and_zip():
    a, b = lf.data.range_dataset(3), lf.data.range_dataset(10, 12)
    both = a.concatenate(b)
    assert values(both) == [0, 1, 2, 10, 11] and len(both) == 5
    assert [b["value"].tolist() for b in a.batch(2).concatenate(b.batch(2))] == [[0, 1], [2], [10, 11]]
    with pytest.raises(DatasetKindError, match="this dataset holds rows, the other batches"):
        a.concatenate(b.batch(2))
    with pytest.raises(DatasetArgumentError, match=r"columns \['x'\] differ from the first dataset's \['value'\]"):
        list(a.concatenate(lf.data.from_arrays({"x": [1]})))
    x = lf.data.from_arrays({"x": np.arange(100)}, rows_per_chunk=7)
    y = lf.data.from_arrays({"y": np.arange(100, 160)}, rows_per_chunk=11)
    zipped = x.zip(y)
    rows = list(zipped)
    assert len(zipped) == 60 and [(r["x"], r["y"]) for r in rows] == [(i, 100 + i) for i in range(60)]
    assert zipped.columns == ["x", "y"]
    pairs = list(x.batch(10).prepare(x="x").zip(y.batch(10).prepare(x="y")))
    assert len(pairs) == 6 and pairs[0][0][0].tolist() == list(range(10)) and pairs[5][1][0][0] == 150
    with pytest.raises(DatasetArgumentError, match="column 'x' is in more than one dataset"):
        list(x.zip(x))
    with pytest.raises(DatasetKindError, match="different kinds"):
        x.zip(y.batch(2))
    with pytest.raises(DatasetArgumentError, match="takes lf.data datasets; got list"):
        x.zip([1, 2])


def test_enumerate_shard_take_while_and_reduce():
    ds = lf.data.from_arrays({"x": np.array([5, 6, 7, 8])}, rows_per_chunk=3)
    assert values(ds.enumerate(start=1), "index") == [1, 2, 3, 4]
    assert [b["index"].tolist() for b in ds.batch(3).enumerate()] == [[0, 1, 2], [3]]
    with pytest.raises(DatasetArgumentError, match="already has a column 'x'"):
        list(ds.enumerate(name="x"))
    r = lf.data.range_dataset(10)
    assert values(r.shard(3, 1)) == [1, 4, 7] and len(r.shard(3, 1)) == 3 and len(r.shard(3, 0)) == 4
    assert [b["value"].tolist() for b in r.batch(2).shard(2, 1)] == [[2, 3], [6, 7]]
    shards = [values(lf.data.range_dataset(1000).shard(4, i)) for i in range(4)]
    assert sorted(sum(shards, [])) == list(range(1000))
    with pytest.raises(DatasetArgumentError, match=r"index=3 must be an integer in \[0, 3\)"):
        r.shard(3, 3)
    assert values(r.take_while(lambda row: row["value"] < 3)) == [0, 1, 2]
    assert [b["value"].tolist() for b in r.batch(4).take_while(lambda b: b["value"].max() < 7)] == [[0, 1, 2, 3]]
    assert r.reduce(0, lambda total, row: total + int(row["value"])) == 45
    assert r.batch(3).reduce(0, lambda n, b: n + 1) == 4
    with pytest.raises(DatasetArgumentError, match="reduce\\(\\) takes a function"):
        r.reduce(0, 5)


def test_window_and_padded_batch():
    r = lf.data.from_arrays({"value": np.arange(10), "f": np.arange(10) * 0.5}, rows_per_chunk=3)
    windows = list(r.window(3, shift=2))
    assert [w["value"].tolist() for w in windows] == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]]
    assert windows[1]["f"].tolist() == [1.0, 1.5, 2.0] and len(r.window(3, shift=2)) == 4
    assert [w["value"].tolist() for w in r.window(3, stride=2, shift=4)] == [[0, 2, 4], [4, 6, 8]]
    partial = r.window(4, drop_remainder=False)
    assert [w["value"].tolist() for w in partial] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and len(partial) == 3
    padded = next(iter(partial.padded_batch(3)))
    assert padded["value"].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]
    seqs = lf.data.from_arrays({"seq": lf.data.ragged([[1], [2, 3], [4, 5, 6], [7]]), "y": np.arange(4)})
    batches = list(seqs.padded_batch(2, padding_values=-1))
    assert [b["seq"].tolist() for b in batches] == [[[1, -1], [2, 3]], [[4, 5, 6], [7, -1, -1]]]
    assert batches[0]["y"].tolist() == [0, 1] and batches[0]["seq"].dtype == np.int64
    fixed = next(iter(seqs.padded_batch(4, padded_shapes={"seq": 5})))
    assert fixed["seq"].shape == (4, 5) and fixed["seq"][3].tolist() == [7, 0, 0, 0, 0]
    with pytest.raises(DatasetArgumentError, match="has 3 elements, more than its padded_shapes length 2"):
        list(seqs.padded_batch(4, padded_shapes={"seq": 2}))
    with pytest.raises(DatasetKindError, match="window\\(\\) groups rows"):
        r.batch(2).window(2)


def test_unique_keeps_first_occurrences():
    ds = lf.data.from_arrays(
        {"x": np.array([3, 1, 3, 2, 1]), "s": np.array(list("abaca"), dtype=object)}, rows_per_chunk=2
    )
    assert values(ds.unique(), "x") == [3, 1, 2, 1] and [r["s"] for r in ds.unique()] == ["a", "b", "c", "a"]
    assert values(ds.unique(columns=["x"]), "x") == [3, 1, 2]
    with pytest.raises(KeyError, match=r"columns \['nope'\] are not in the data"):
        list(ds.unique(columns=["nope"]))


def test_cache_in_memory_and_in_a_file(tmp_path):
    reads = []

    def counting(batch):
        reads.append(1)
        return batch

    images = np.arange(40, dtype=np.float32).reshape(10, 2, 2)
    source = (
        lf.data.from_arrays(
            {"img": images, "name": np.array([f"n{i}" for i in range(10)], dtype=object)}, rows_per_chunk=4
        )
        .batch(4)
        .map(counting)
    )
    cached = source.cache()
    first = [b["img"].copy() for b in cached]
    assert len(reads) == 3
    again = [b["img"] for b in cached]
    assert len(reads) == 3 and all(np.array_equal(a, b) for a, b in zip(first, again))
    partial = source.cache()
    list(partial.take(1))
    list(partial)  # the stopped pass cached nothing, this one reads everything
    assert len(reads) == 3 + 1 + 3
    on_disk = source.cache(tmp_path / "cache.arrow")
    assert [b["name"].tolist() for b in on_disk][2] == ["n8", "n9"]
    assert (tmp_path / "cache.arrow").exists() and len(reads) == 10
    replay = list(on_disk)
    assert len(reads) == 10  # the second pass reads the file, not the source
    assert np.array_equal(np.concatenate([b["img"] for b in replay]), images)
    assert replay[0]["img"].shape == (4, 2, 2) and replay[0]["name"].tolist() == ["n0", "n1", "n2", "n3"]
    with pytest.raises(DatasetArgumentError, match="does not exist"):
        source.cache(tmp_path / "no" / "such" / "c.arrow")
    with pytest.raises(DatasetKindError, match="call it before prepare"):
        source.prepare(x="img").cache(tmp_path / "c.arrow")


def test_a_cached_csv_is_parsed_once_and_replays_the_same_rows(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("a,city\n" + "".join(f"{i * 0.5},c{i % 4}\n" for i in range(1000)))
    for cache_path in (None, tmp_path / "rows.arrow"):
        ds = lf.data.csv_dataset(path, batch_size=300, block_bytes=2048).cache(cache_path)
        first = [(b["a"].copy(), b["city"].tolist()) for b in ds]
        path_moved = tmp_path / "moved.csv"
        path.rename(path_moved)  # a second pass that parsed the file again would fail now
        second = [(b["a"], b["city"].tolist()) for b in ds]
        path_moved.rename(path)
        assert [len(a) for a, _ in second] == [300, 300, 300, 100]
        assert all(np.array_equal(a1, a2) and c1 == c2 for (a1, c1), (a2, c2) in zip(first, second))
        assert second[0][0].dtype == np.float32 and second[3][1][-1] == "c3"
        assert ds.arrow_batches() is not None  # feature specs still encode the cached Arrow batches directly


def test_a_dataset_of_unknown_length_is_still_truthy(tmp_path):
    (tmp_path / "a.csv").write_text("a\n1\n")
    assert lf.data.csv_dataset(tmp_path / "a.csv") and lf.data.range_dataset(0)


def test_the_docstring_examples_of_the_operations_run_as_written():
    import doctest

    from layerflow.data import combining, readers

    functions = [f for f in vars(combining.CombiningOps).values() if callable(f) and ">>>" in (f.__doc__ or "")]
    functions += [readers.range_dataset, lf.data.Dataset.batch, lf.data.Dataset.__len__, lf.data.ragged]
    for function in functions:
        test = doctest.DocTestParser().get_doctest(function.__doc__, {"lf": lf, "np": np}, function.__name__, None, 0)
        runner = doctest.DocTestRunner()
        runner.run(test)
        assert runner.summarize(verbose=False).failed == 0, function.__name__
    assert len(functions) >= 13


def test_batching_copies_each_row_at_most_once():
    source = np.arange(100, dtype=np.float32)
    batches = list(lf.data.from_arrays({"x": source}, rows_per_chunk=30).batch(8))
    assert [len(b["x"]) for b in batches] == [8] * 12 + [4]
    assert np.array_equal(np.concatenate([b["x"] for b in batches]), source)
    inside = [b for b in batches if np.shares_memory(b["x"], source)]
    # a batch within one 30-row block is a view of it; only the 3 batches spanning two blocks are copies
    assert len(inside) == 10
    import pyarrow as pa

    from layerflow.data.arrow_batches import rebatch

    blocks = [pa.record_batch({"x": pa.array(source[i : i + 30])}) for i in range(0, 100, 30)]
    arrow_batches = list(rebatch(iter(blocks), 8))
    assert [b.num_rows for b in arrow_batches] == [8] * 12 + [4]
    assert np.array_equal(np.concatenate([b.column(0).to_numpy() for b in arrow_batches]), source)


def test_arrow_batches_are_the_datasets_chunks_as_record_batches(tmp_path):
    # The interface between lf.data and lf.feature_spec: record batch i is chunk i, kept through batch,
    # prefetch and cache; any other transformation, and a source that is not Arrow, has none.
    path = tmp_path / "rows.csv"
    path.write_text("a,city\n" + "".join(f"{i},c{i % 3}\n" for i in range(50)))
    ds = lf.data.csv_dataset(path, block_bytes=64).batch(16).prefetch(2).cache()
    arrow = ds.arrow_batches()
    assert arrow is not None
    for _ in range(2):  # each call is a new pass
        chunks, batches = list(ds.chunks()), list(arrow.record_batches())
        assert [b.num_rows for b in batches] == [len(c["a"]) for c in chunks] == [16, 16, 16, 2]
        for chunk, batch in zip(chunks, batches):
            converted = arrow.to_chunk(batch)
            assert converted.keys() == chunk.keys()
            assert all(np.array_equal(converted[k], chunk[k]) and converted[k].dtype == chunk[k].dtype for k in chunk)
        assert list(arrow.to_chunk(batches[0].select(["city"]))) == ["city"]
    assert ds.map(lambda c: c).arrow_batches() is None and ds.unbatch().arrow_batches() is None
    assert lf.data.range_dataset(4).arrow_batches() is None
    assert ds.known_length is None and lf.data.range_dataset(10).batch(4).known_length == 3
