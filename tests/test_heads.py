"""Prediction heads (deploy/heads.py): the ONNX graph that turns a model's output into named predictions."""

import numpy as np
import onnxruntime as ort
import pytest

from layerflow.deploy.heads import HEAD_INPUT, head_model


@pytest.mark.parametrize(
    ("head", "model_outputs", "width", "labels"),
    [
        ("regression", "predictions", 1, []),
        ("binary", "logits", 1, ["no", "yes"]),
        ("binary", "probabilities", 1, ["no", "yes"]),
        ("binary", "probabilities", 2, ["no", "yes"]),
        ("multiclass", "logits", 3, ["a", "b", "c"]),
    ],
)
def test_head_declares_the_width_it_was_given(head, model_outputs, width, labels):
    graph = head_model(head, model_outputs, width, labels, opset=20, ir_version=9).graph
    (declared,) = [i for i in graph.input if i.name == HEAD_INPUT]
    assert declared.type.tensor_type.shape.dim[1].dim_value == width


def test_binary_head_over_two_probability_columns_uses_the_last():
    model = head_model("binary", "probabilities", 2, ["no", "yes"], opset=20, ir_version=9)
    session = ort.InferenceSession(model.SerializeToString())
    out = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {HEAD_INPUT: np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)}),
        )
    )
    np.testing.assert_allclose(out["logistic"][:, 0], [0.1, 0.8], rtol=1e-6)
    assert out["class_ids"][:, 0].tolist() == [0, 1]
