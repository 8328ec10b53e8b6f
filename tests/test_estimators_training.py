"""The Keras estimators' training path: the same batches and weights as the plain per-batch loop it
replaced, the traced step for seeded dropout, and torch's global state (threads, generator) left as found."""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
import pytest
import torch

import layerflow as lf
from layerflow.estimators.inputs import as_dataset, batches
from layerflow.estimators.step_threads import StepThreads
from layerflow.estimators.train_steps import EpochLoss, TrainSteps
from layerflow.estimators.training_feed import TrainingFeed

E = lf.estimators


def make_frame(n: int = 700, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.uniform(0, 10, n),
            "city": rng.choice(list("pqrs"), n),
            "w": rng.uniform(0.5, 2.0, n),
        }
    )
    frame.loc[::17, "b"] = np.nan  # missing numbers are encoded (replaced by the mean) row by row too
    frame["y"] = ((frame.a + np.nan_to_num(frame.b) / 5 + (frame.city == "p")) > 1.5).astype(np.int64)
    return frame


def plain_loop(est, frame: pd.DataFrame, epochs: int) -> list[float]:
    """What the estimators did before: shuffle and batch the raw rows, encode each batch, train_on_batch."""
    est._prepare_spec(as_dataset(frame))
    est._build()
    losses = []
    for epoch in range(epochs):
        seed = est.seed * 1000 + epoch
        for batch in batches(as_dataset(frame), est.batch_size, est.shuffle_buffer, seed).chunks():
            features, targets, weights = est._encode(batch)
            losses.append(float(est.model.train_on_batch(features, targets, sample_weight=weights)))
    return losses


@pytest.mark.parametrize("source", ["frame", "batched", "unshuffled"])
def test_the_feed_gives_the_batches_of_shuffling_batching_then_encoding(source):
    frame = make_frame(3000)
    est = E.LinearClassifier(
        label="y", weight_column="w", batch_size=64, shuffle_buffer=None if source == "unshuffled" else 500, seed=3
    )
    data = lf.data.from_frame(frame, rows_per_chunk=700)  # several blocks, the last one short
    if source == "batched":
        data = data.batch(100)
    est._prepare_spec(data)
    est._build()
    expected = [est._encode(b) for b in batches(data, 64, est.shuffle_buffer, 11).chunks()]
    feed = TrainingFeed(data, est._encode, 64, est.shuffle_buffer, keep_encoded=True)
    for epoch in range(2):  # the first pass encodes as it streams, the second gathers from the kept rows
        got = list(feed.epoch(11))
        assert (feed.encoded is not None) == (epoch == 0) or epoch == 1
        assert len(got) == len(expected)
        for (features, targets, weights), (want_f, want_t, want_w) in zip(got, expected):
            assert sorted(features) == sorted(want_f)
            for name in features:
                np.testing.assert_array_equal(features[name], want_f[name])
            np.testing.assert_array_equal(targets, want_t)
            np.testing.assert_array_equal(weights, want_w)
    assert feed.encoded is not None


def test_a_stream_or_a_pass_cut_short_keeps_no_encoded_copy(tmp_path):
    frame = make_frame(400)
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    est = E.LinearClassifier(label="y", batch_size=32, seed=0)
    est._prepare_spec(as_dataset(frame))
    stream = TrainingFeed(as_dataset(str(path)), est._encode, 32, 100, keep_encoded=False)
    assert sum(len(t) for _, t, _ in stream.epoch(0)) == 400 and stream.encoded is None
    cut = TrainingFeed(as_dataset(frame), est._encode, 32, 100, keep_encoded=True)
    next(iter(cut.epoch(0)))  # steps= stops inside the first pass
    assert cut.encoded is None
    assert sum(len(t) for _, t, _ in cut.epoch(0)) == 400 and cut.encoded is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: E.LinearClassifier(label="y", weight_column="w", batch_size=50, seed=1),
        lambda: E.DNNClassifier(
            label="y", hidden_units=[8, 4], optimizer="Adam", learning_rate=0.01, batch_size=40, seed=2
        ),
        lambda: E.DNNLinearCombinedRegressor(label="a", hidden_units=[6], batch_size=64, seed=4, shuffle_buffer=None),
    ],
    ids=["linear-weighted", "dnn", "wide-deep-regressor-unshuffled"],
)
def test_training_gives_the_weights_of_the_per_batch_loop(make):
    frame = make_frame()
    reference = make()
    losses = plain_loop(reference, frame, epochs=3)
    est = make()
    est.train(frame, epochs=3)
    assert est.global_step == len(losses)
    for mine, theirs in zip(est.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_each_step_returns_the_loss_train_on_batch_returns():
    frame = make_frame()
    one, other = (E.DNNClassifier(label="y", hidden_units=[8], batch_size=50, seed=3) for _ in range(2))
    for est in (one, other):
        est._prepare_spec(as_dataset(frame))
        est._build()
    steps = TrainSteps(one.model)
    mine, theirs = [], []
    for batch in batches(as_dataset(frame), 50, 200, 0).chunks():
        features, targets, weights = one._encode(batch)
        mine.append(steps(features, targets, weights))
        theirs.append(float(other.model.train_on_batch(features, targets, sample_weight=weights)))
    assert [float(loss) for loss in mine] == theirs
    epoch_loss = EpochLoss()
    for loss in mine:
        epoch_loss.add(loss)
    assert epoch_loss.mean() == sum(theirs) / len(theirs)  # added in order, as the epoch's loss was


def test_the_epoch_loss_is_the_python_float_sum_and_keeps_no_batch_loss():
    rng = np.random.default_rng(5)
    values = rng.uniform(0, 3, 500).astype(np.float32)
    tensors = [torch.tensor(v) for v in values]
    kept = [weakref.ref(t) for t in tensors]
    loss = EpochLoss()
    loss.add(float(values[0]))  # the first step's loss comes from train_on_batch as a float
    for tensor in tensors[1:]:
        loss.add(tensor)
    del tensors, tensor
    assert [ref() for ref in kept[1:]] == [None] * (len(kept) - 1)  # the sum holds none of them
    total = 0.0
    for v in values:
        total += float(v)
    assert loss.mean() == total / len(values) and loss.count == len(values)
    with pytest.raises(ZeroDivisionError):
        EpochLoss().mean()


def test_a_seeded_dnn_with_dropout_trains_on_the_traced_step_and_repeats_itself():
    frame = make_frame()

    def train():
        est = E.DNNClassifier(label="y", hidden_units=[16, 8], dropout=0.3, batch_size=64, seed=5)
        return est.train(frame, epochs=2)

    first, second = train(), train()
    assert lf.fast_fit_status(first.model)["train"] == "fast"
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    state = torch.get_rng_state()  # (building a seeded model seeds every generator, as Keras's set_random_seed)
    first.train(frame, epochs=3)
    assert torch.equal(torch.get_rng_state(), state)  # training gives the caller's generator back
    # the masks do drop units: training with dropout differs from training without it
    plain = E.DNNClassifier(label="y", hidden_units=[16, 8], batch_size=64, seed=5).train(frame, epochs=2)
    assert not np.array_equal(plain.model.get_weights()[-1], first.model.get_weights()[-1])


def test_a_loaded_estimator_resumes_with_its_batches_and_dropout_masks(tmp_path):
    frame = make_frame()

    def make(folder):
        return E.DNNClassifier(label="y", hidden_units=[16], dropout=0.25, batch_size=64, seed=9, model_dir=folder)

    whole = make(tmp_path / "whole").train(frame, epochs=3)
    make(tmp_path / "parts").train(frame, epochs=1)
    loaded = E.load(tmp_path / "parts")  # gives back how batches are drawn, which no model weight records
    assert (loaded.batch_size, loaded.seed, loaded.shuffle_buffer) == (64, 9, 10_000)
    resumed = loaded.train(frame, epochs=3)
    for a, b in zip(whole.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_step_threads_time_both_counts_then_give_torch_its_count_back():
    before = torch.get_num_threads()
    threads = StepThreads()
    with threads:
        for _ in range(12):
            threads.before(64)
            torch.ones(64, 64) @ torch.ones(64, 64)
            threads.after()
    assert torch.get_num_threads() == before
    if before > 1:
        assert threads.done and threads.chosen in (1, before)
        assert len(threads.samples[1]) >= 4 and len(threads.samples[before]) >= 4
    else:
        assert threads.done and not threads.samples[1]


def test_step_threads_leave_batches_of_another_length_untimed():
    threads = StepThreads()
    if threads.done:
        pytest.skip("torch runs one thread here: nothing to choose")
    with threads:
        threads.before(64)  # the first batch builds and traces: not timed
        threads.after()
        for _ in range(3):
            threads.before(10)  # a last, partial batch: another graph, not timed
            threads.after()
    assert threads.samples == {threads.original: [], 1: []} and not threads.done


def test_training_that_fails_still_gives_torch_its_threads_and_generator_back():
    frame = make_frame()
    bad = frame.assign(y=np.where(np.arange(len(frame)) == 300, np.nan, frame.y))
    est = E.DNNClassifier(label="y", hidden_units=[8], dropout=0.2, seed=1).train(frame, epochs=1)
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    with pytest.raises(E.EstimatorError, match="Label column .y. has missing"):
        est.train(bad, epochs=2)
    assert est.epochs_done == 1
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)
