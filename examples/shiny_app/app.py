"""A Shiny for Python app that predicts from an exported layerflow bundle, with a form built from its signature.

    layerflow export latest --out models/            # any model: an ONNX bundle models/<name>/<version>
    LAYERFLOW_BUNDLE=models/<name>/<version> shiny run examples/shiny_app/app.py

The app loads the bundle with onnxruntime (no Keras, no training code), shows one field per
raw feature of the signature (a number or a text field by its dtype; one field per column of
a small vector input) and, on "Predict", the outputs and, for a classifier with class labels,
the classes ranked by probability.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from shiny import App, reactive, render, ui

from layerflow.deploy import predict
from layerflow.deploy.bundle import read_bundle

BUNDLE = Path(os.environ.get("LAYERFLOW_BUNDLE", "models/model/1"))
MAX_VECTOR_FIELDS = 32


def fields(signature: dict) -> list[tuple[str, str, dict, int | None]]:
    """(field id, label, input spec, column) for every form field: one per scalar input, one per column of a vector."""
    out = []
    for spec in signature["inputs"]:
        shape = spec.get("shape") or [None]
        width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        if len(shape) == 1:
            out.append((f"in_{len(out)}", spec["name"], spec, None))
        elif width is not None and width <= MAX_VECTOR_FIELDS:
            out += [
                (f"in_{len(out) + i}", spec["name"] if width == 1 else f"{spec['name']}[{i}]", spec, i)
                for i in range(width)
            ]
        else:
            raise SystemExit(f"Input {spec['name']} is shaped {shape}: this form takes scalar and small vector inputs.")
    return out


bundle = read_bundle(BUNDLE)
signature = bundle["signature"]
FIELDS = fields(signature)
LABELS = signature.get("class_labels")


def field(field_id: str, label: str, spec: dict):
    if spec["dtype"] == "string":
        return ui.input_text(field_id, label, value="")
    return ui.input_numeric(field_id, label, value=0)


app_ui = ui.page_fluid(
    ui.h2(f"{BUNDLE.parent.name} (version {BUNDLE.name})"),
    ui.layout_columns(
        ui.card(
            ui.card_header("Inputs"),
            *[field(i, label, spec) for i, label, spec, _ in FIELDS],
            ui.input_action_button("predict", "Predict", class_="btn-primary"),
        ),
        ui.card(ui.card_header("Prediction"), ui.output_ui("prediction")),
    ),
)


def server(input, output, session):
    @reactive.calc
    @reactive.event(input.predict)
    def outputs():
        columns: dict[str, list] = {}
        for field_id, _, spec, column in FIELDS:
            value = input[field_id]()
            value = str(value or "") if spec["dtype"] == "string" else float(value or 0)
            if column is None:
                columns[spec["name"]] = [value]  # one row of a scalar input
            else:
                columns.setdefault(spec["name"], [[]])[0].append(value)  # one row of a vector input
        inputs = columns if len(columns) > 1 else next(iter(columns.values()))
        return predict(BUNDLE, inputs)

    @render.ui
    def prediction():
        result = outputs()
        first = next(iter(result.values()))  # lf.predict names every output; the first is the model's answer
        row = np.asarray(first, dtype=float)[0].ravel()
        if LABELS and len(LABELS) == len(row):
            ranked = sorted(zip(LABELS, row), key=lambda pair: -pair[1])
            return ui.div(
                ui.h4(ranked[0][0], id="predicted-class"),
                ui.tags.table(
                    *[ui.tags.tr(ui.tags.td(label), ui.tags.td(f"{p:.4f}")) for label, p in ranked],
                    class_="table table-sm",
                    id="classes",
                ),
            )
        return ui.pre(json.dumps({k: v.tolist() for k, v in result.items()}), id="outputs")


app = App(app_ui, server)
