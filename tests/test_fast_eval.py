"""layerflow's direct evaluate/predict loops and exact graph rewrites, against Keras's own path.

The same model (same weights) is evaluated and used to predict twice: on the fast path (the
default) and with LAYERFLOW_FAST_FIT=0 (Keras's own loops and steps); the results must be
identical, not merely close: the loops change only how batches are fed and gathered, and the
graph rewrites only drop operations whose results are bit-identical without them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from layerflow import keras
from layerflow.fastfit import _keras_internals, fast_fit_status
from layerflow.fastfit.simplify import FlatGraph
from tests.test_fast_fit import X_VAL, Y_VAL, X, Y, mlp

SWITCHES = ("1", "0")  # fast path, Keras's own


@pytest.fixture(scope="module")
def trained():
    model = mlp(seed=4)
    model.fit(X, Y, batch_size=32, epochs=2, verbose=0)
    return model


def on_both_paths(monkeypatch, run):
    """``run()`` on the fast path, then with LAYERFLOW_FAST_FIT=0; returns both results."""
    results = {}
    for switch in SWITCHES:
        monkeypatch.setenv("LAYERFLOW_FAST_FIT", switch)
        results[switch] = run()
    monkeypatch.delenv("LAYERFLOW_FAST_FIT")
    return results["1"], results["0"]


def test_evaluate_and_predict_are_identical_to_kerass_on_the_same_weights(monkeypatch, trained):
    weights = np.linspace(0.0, 2.0, len(X_VAL)).astype("float32")

    def run():
        steps_before = trained.test_function.fast_steps if hasattr(trained.test_function, "fast_steps") else 0
        result = (
            trained.evaluate(X_VAL, Y_VAL, batch_size=16, verbose=0),  # 70 rows: a last batch of 6
            trained.evaluate(X_VAL, Y_VAL, batch_size=16, verbose=0, return_dict=True),
            trained.evaluate(X_VAL, Y_VAL, batch_size=16, verbose=0, sample_weight=weights),
            trained.predict(X_VAL, batch_size=16, verbose=0),
            trained.predict(X_VAL, verbose=0),
        )  # Keras's default batch size
        return result, trained.test_function.fast_steps - steps_before

    (fast, fast_steps), (slow, slow_steps) = on_both_paths(monkeypatch, run)
    assert fast_fit_status(trained)["test"] == fast_fit_status(trained)["predict"] == "fast"
    assert fast_steps == 3 * 5 and slow_steps == 0  # 5 batches per evaluate ran on the fast path
    assert fast[0] == slow[0] and fast[1] == slow[1] and fast[2] == slow[2]
    assert fast[2] != fast[0]  # the weights counted
    for fast_predictions, slow_predictions in zip(fast[3:], slow[3:]):
        assert fast_predictions.dtype == slow_predictions.dtype and fast_predictions.shape == (70, 3)
        assert fast_predictions.flags.c_contiguous and fast_predictions.flags.owndata
        np.testing.assert_array_equal(fast_predictions, slow_predictions)


class Recorder(keras.callbacks.Callback):
    """Records every evaluate/predict hook with what it was given."""

    def __init__(self, stop_test_after=None, stop_predict_after=None):
        super().__init__()
        self.seen = []
        self.stop_test_after, self.stop_predict_after = stop_test_after, stop_predict_after

    def on_test_begin(self, logs=None):
        self.seen.append(("test_begin",))

    def on_test_batch_begin(self, batch, logs=None):
        self.seen.append(("test_batch_begin", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.seen.append(("test_batch_end", batch, {k: float(v) for k, v in logs.items()}))
        if batch == self.stop_test_after:
            self.model.stop_evaluating = True

    def on_test_end(self, logs=None):
        self.seen.append(("test_end", dict(logs)))

    def on_predict_begin(self, logs=None):
        self.seen.append(("predict_begin",))

    def on_predict_batch_begin(self, batch, logs=None):
        self.seen.append(("predict_batch_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        outputs = logs["outputs"]
        self.seen.append(
            ("predict_batch_end", batch, type(outputs).__name__, tuple(outputs.shape), np.asarray(outputs).tobytes())
        )
        if batch == self.stop_predict_after:
            self.model.stop_predicting = True

    def on_predict_end(self, logs=None):
        self.seen.append(("predict_end",))


class EndsOnly(keras.callbacks.Callback):
    """Listens to batch ends only (its batch-begin hooks are Keras's defaults)."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def on_test_batch_end(self, batch, logs=None):
        self.batches.append(("test", batch, sorted(logs)))

    def on_predict_batch_end(self, batch, logs=None):
        self.batches.append(("predict", batch, sorted(logs)))


@pytest.mark.parametrize("stops", [(None, None), (1, 2)], ids=["every-batch", "stopped-by-a-callback"])
def test_callbacks_hear_the_same_hooks_batches_and_values(monkeypatch, trained, stops):
    def run():
        recorder, ends = Recorder(*stops), EndsOnly()
        torch.manual_seed(11)
        evaluated = trained.evaluate(X_VAL, Y_VAL, batch_size=16, verbose=0, callbacks=[recorder, ends])
        predicted = trained.predict(X_VAL, batch_size=16, verbose=0, callbacks=[recorder, ends])
        return evaluated, predicted, recorder.seen, ends.batches, torch.rand(4)  # the random state after both

    fast, slow = on_both_paths(monkeypatch, run)
    assert fast[0] == slow[0]
    np.testing.assert_array_equal(fast[1], slow[1])
    assert fast[2] == slow[2]
    assert fast[3] == slow[3]
    torch.testing.assert_close(fast[4], slow[4], rtol=0, atol=0)
    if stops[0] is not None:
        assert [s[1] for s in fast[2] if s[0] == "test_batch_end"] == [0, 1]
        assert fast[1].shape == (48, 3)  # three batches of 16 before predict stopped


def test_random_state_and_fit_validation_follow_kerass(monkeypatch):
    """Keras's epoch iterator draws a seed from torch's generator when it starts and, having
    run every batch, again for the next epoch: shuffles and dropout after evaluate/predict
    (here in fit with validation) depend on the same draws."""

    def run():
        model = mlp(seed=8)
        history = model.fit(X, Y, batch_size=32, epochs=3, validation_data=(X_VAL, Y_VAL), verbose=0).history
        model.evaluate(X_VAL, Y_VAL, verbose=0)
        model.predict(X_VAL, verbose=0)
        return history, torch.rand(3)

    fast, slow = on_both_paths(monkeypatch, run)
    for key in slow[0]:
        np.testing.assert_allclose(fast[0][key], slow[0][key], rtol=1e-4, atol=2e-5, err_msg=key)
    torch.testing.assert_close(fast[1], slow[1], rtol=0, atol=0)


def test_arrays_keras_would_convert_differently_keep_its_conversion(monkeypatch, trained):
    read_only = X_VAL.copy()
    read_only.flags.writeable = False
    inputs = {
        "float64": X_VAL.astype("float64"),
        "fortran-ordered": np.asfortranarray(X_VAL),
        "strided view": np.repeat(X_VAL, 2, axis=1)[:, ::2],
        "read-only": read_only,
        "uint8": (X_VAL * 255).astype("uint8"),
    }
    labels = {"int64": Y_VAL.astype("int64"), "int32": Y_VAL.astype("int32"), "uint8": Y_VAL.astype("uint8")}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = {
                name: (
                    trained.evaluate(x, Y_VAL, batch_size=16, verbose=0),
                    trained.predict(x, batch_size=16, verbose=0),
                )
                for name, x in inputs.items()
            }
            result.update(
                {f"labels {name}": trained.evaluate(X_VAL, y, batch_size=16, verbose=0) for name, y in labels.items()}
            )
        return result, [str(w.message) for w in caught if "writable" in str(w.message)]

    (fast, fast_warnings), (slow, _) = on_both_paths(monkeypatch, run)
    assert fast_warnings == []
    for name in fast:
        if name.startswith("labels"):
            assert fast[name] == slow[name], name
        else:
            assert fast[name][0] == slow[name][0], name
            np.testing.assert_array_equal(fast[name][1], slow[name][1], err_msg=name)


def test_which_batches_are_sliced_straight_into_tensors(trained):
    from keras.src.backend.torch.trainer import TorchEpochIterator

    def direct(**options):
        iterator = TorchEpochIterator(**{"batch_size": 16, "shuffle": False, **options})
        return _keras_internals._direct_batches(trained, iterator)

    batches = direct(x=X_VAL, y=Y_VAL)
    assert batches is not None and batches.num_samples == 70 and len(batches) == 5
    first = next(iter(batches))
    assert type(first) is tuple and first[0].dtype == torch.float32 and first[1].dtype == torch.int64
    assert np.shares_memory(first[0].numpy(), X_VAL)  # a view, not Keras's copy
    assert type(next(iter(direct(x=X_VAL)))) is torch.Tensor  # x alone: one tensor, as Keras yields it
    assert direct(x=np.asfortranarray(X_VAL), y=Y_VAL) is None
    assert direct(x=X_VAL, y=Y_VAL, steps_per_epoch=2) is None
    assert direct(x=[X_VAL, X_VAL], y=Y_VAL) is None  # nested structures keep Keras's tree mapping


def test_models_with_several_inputs_or_outputs_match_kerass(monkeypatch):
    keras.utils.set_random_seed(2)
    left, right = keras.Input((12,), name="left"), keras.Input((12,), name="right")
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([left, right]))
    outputs = [keras.layers.Dense(3, activation="softmax", name="a")(hidden), keras.layers.Dense(1, name="b")(hidden)]
    model = keras.Model([left, right], outputs)
    model.compile(loss=["sparse_categorical_crossentropy", "mse"], optimizer="adam", metrics=[["accuracy"], []])

    def run():
        return (
            model.predict([X_VAL, X_VAL[::-1].copy()], batch_size=16, verbose=0),
            model.evaluate([X_VAL, X_VAL], [Y_VAL, X_VAL[:, :1]], batch_size=16, verbose=0),
        )

    fast, slow = on_both_paths(monkeypatch, run)
    assert fast_fit_status(model)["predict"] == "fast"
    assert isinstance(fast[0], list) and len(fast[0]) == 2
    for a, b in zip(fast[0], slow[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast[1] == slow[1]

    single_output = keras.Model([left, right], outputs[1])  # one output from several inputs: one array

    def run_single():
        return single_output.predict({"left": X_VAL, "right": X_VAL}, batch_size=32, verbose=0)

    fast_single, slow_single = on_both_paths(monkeypatch, run_single)
    np.testing.assert_array_equal(fast_single, slow_single)


class _Traced(FlatGraph):
    """A function of tensors traced and simplified as the fast path does a step (which takes
    lists of tensors: make_fx records their structure), called with the same tensors."""

    def __call__(self, *tensors):
        return super().__call__(list(tensors))


def _graph(function, *arguments):
    return _Traced(_keras_internals.trace_fake(lambda tensors: function(*tensors), (list(arguments),)))


def _ops(graph: FlatGraph) -> list[str]:
    return [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]


def test_rewrites_keep_kerass_label_casts_bit_identical():
    def loss_and_accuracy(scores, labels):
        log_probabilities = torch.log(torch.softmax(scores, -1).clamp(1e-7, 1 - 1e-7))
        loss = torch.nn.functional.nll_loss(
            log_probabilities, labels.to(torch.float32).to(torch.int64), reduction="none"
        ).sum()
        matches = labels.to(torch.float32) == scores.argmax(-1).to(torch.int32).to(torch.float32)
        return loss, matches.to(torch.float32).sum()

    scores = torch.randn(64, 10)
    labels = torch.randint(0, 10, (64,))
    labels[::7] = -100  # nll_loss's ignore index survives the round trip
    graph = _graph(loss_and_accuracy, scores, labels)
    assert graph.rewritten == 3  # the round trip, the float comparison, the count
    assert "aten._to_copy.default" not in _ops(graph)
    for trial in range(3):
        scores, labels = torch.randn(64, 10), torch.randint(0, 10, (64,))
        labels[trial::5] = -100
        expected = loss_and_accuracy(scores, labels)
        torch.testing.assert_close(graph(scores, labels), expected, rtol=0, atol=0)

    def accuracy(scores, labels):
        return (labels.to(torch.float32) == scores.argmax(-1).to(torch.int32).to(torch.float32)).to(torch.float32).sum()

    large = torch.tensor([2**24 + 1, 2**24, 2**40, -(2**24) - 3, 3, 0, 9, 5])  # floats round these
    scores = torch.zeros(8, 10)
    scores[torch.arange(8), torch.tensor([0, 0, 0, 0, 3, 0, 9, 4])] = 1.0
    graph = _graph(accuracy, scores, large)
    assert graph.rewritten == 2
    assert float(graph(scores, large)) == float(accuracy(scores, large)) == 3.0


def test_rewrites_leave_casts_a_value_might_not_survive():
    def half_accuracy(scores, labels):  # float16 holds integers exactly only up to 2048
        return (labels.to(torch.float16) == scores.argmax(-1).to(torch.float16)).sum()

    scores, labels = torch.zeros(4, 4096), torch.tensor([2049, 2048, 7, 4095])
    scores[torch.arange(4), torch.tensor([2048, 2048, 7, 4094])] = 1.0
    graph = _graph(half_accuracy, scores, labels)
    assert graph.rewritten == 0 and _ops(graph).count("aten._to_copy.default") == 2
    assert int(graph(scores, labels)) == int(half_accuracy(scores, labels)) == 3  # 2049 rounds to 2048
    assert int((labels == scores.argmax(-1)).sum()) == 2  # what comparing the integers would give

    def float_labels(scores, labels):  # labels already floats: nothing to undo
        return (labels == scores.argmax(-1).to(torch.float32)).to(torch.float32).sum()

    graph = _graph(float_labels, torch.randn(8, 3), torch.ones(8))
    assert "aten.eq.Tensor" in _ops(graph) and graph.rewritten == 1  # only the count


def test_a_constant_condition_picks_its_branch():
    def mean_or_zero(values):
        count = torch.tensor(float(values.shape[0]))  # known when traced: folded into a constant
        return torch.where(count == 0, torch.tensor(0.0), values.sum() / count)

    graph = _graph(mean_or_zero, torch.randn(16))
    assert "aten.where.self" not in _ops(graph)
    values = torch.randn(16)
    torch.testing.assert_close(graph(values), mean_or_zero(values), rtol=0, atol=0)


def test_inference_graphs_write_in_place_only_where_no_value_changes():
    from layerflow.fastfit.simplify import write_in_place

    def network(x, weight, bias):
        hidden = torch.relu(torch.mm(x, weight) + bias)  # fresh intermediates: written in place
        transposed = weight.t()  # a view of an input: never written
        shared = hidden * 2.0  # used twice: kept
        return torch.log((shared + 1.0).clamp(1e-3, 10.0)), (transposed + 1.0).sum(), shared.sum() + hidden.sum()

    x, weight, bias = torch.randn(8, 5), torch.randn(5, 5), torch.randn(5)
    expected = network(x, weight, bias)
    graph = _graph(network, x, weight, bias)
    changed = write_in_place(graph.module)
    ops = _ops(graph)
    assert changed == 5 and ops.count("aten.relu_.default") == 1 and ops.count("aten.add_.Tensor") == 2
    assert "aten.mul.Tensor" in ops  # the shared one
    graph.forward = graph.module.forward
    weight_before = weight.clone()
    for got, want in zip(graph(x, weight, bias), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(weight, weight_before, rtol=0, atol=0)


def test_a_failing_first_run_leaves_the_metric_totals_as_they_were():
    """Metric totals are updated in place; a first run that fails after updating them must put
    them back, since the batch then runs again on the Python replay or on Keras's path."""

    def step(trainable, non_trainable, metrics, x, y):
        total = metrics[0] + x.sum()
        loss = torch.nn.functional.nll_loss(torch.log_softmax(x, -1), y)  # fails for a label out of range
        return loss, [], [total], {"loss": loss}

    x, total = torch.randn(4, 3), torch.zeros(())
    graph = FlatGraph(_keras_internals.trace_fake(step, ([], [], [total], x, torch.zeros(4, dtype=torch.int64))))
    graph.script_for_inference()
    assert graph.in_place == 1 and "aten.add_.Tensor" in _ops(graph)
    with pytest.raises(Exception, match="out of bounds"):
        graph.call_step([total, x, torch.tensor([0, 1, 7, 2])])
    assert float(total) == 0.0
    loss, _, (new_total,), _ = graph.call_step([total, x, torch.tensor([0, 1, 2, 2])])
    assert new_total is total and float(total) == pytest.approx(float(x.sum()))
    torch.testing.assert_close(loss, torch.nn.functional.nll_loss(torch.log_softmax(x, -1), torch.tensor([0, 1, 2, 2])))
