"""layerflow runs on tested Keras (and torch) releases only: the one owner of those releases and of the
private Keras APIs layerflow uses is ``layerflow.backend``; this is the one test of them."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import layerflow
from layerflow.backend import (
    KERAS_PRIVATE_API_MODULES,
    KERAS_PRIVATE_APIS,
    TESTED_KERAS_VERSIONS,
    TESTED_TORCH_VERSIONS,
    minor_release,
)

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path(layerflow.__file__).parent


def test_installed_keras_is_a_tested_release():
    installed = importlib.metadata.version("keras")
    assert installed in SpecifierSet(TESTED_KERAS_VERSIONS), (
        f"Keras {installed} is not a release layerflow is tested on ({TESTED_KERAS_VERSIONS}). layerflow uses the "
        f"private Keras APIs {KERAS_PRIVATE_APIS}; run the whole suite on Keras {installed}, then widen "
        "TESTED_KERAS_VERSIONS in layerflow/tested_versions.py and the keras pin in pyproject.toml together."
    )


def test_installed_torch_is_a_tested_release():
    installed = importlib.metadata.version("torch").split("+")[0]
    assert installed in SpecifierSet(TESTED_TORCH_VERSIONS), (installed, TESTED_TORCH_VERSIONS)


def test_pyproject_pins_the_tested_releases():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = [*project["dependencies"], *project["optional-dependencies"]["train"]]  # the training stack is an extra
    for name, tested in (("keras", TESTED_KERAS_VERSIONS), ("torch", TESTED_TORCH_VERSIONS)):
        pins = [Requirement(r) for r in listed if Requirement(r).name == name]
        assert len(pins) == 1 and pins[0].specifier == SpecifierSet(tested), (name, pins)


def test_the_fast_path_reads_its_tested_releases_from_the_one_owner():
    from layerflow.fastfit import _keras_internals

    assert _keras_internals.TESTED_VERSIONS == {
        "keras": minor_release(TESTED_KERAS_VERSIONS),
        "torch": minor_release(TESTED_TORCH_VERSIONS),
    }
    assert minor_release(">=3.15,<3.16") == (3, 15) and minor_release("<2.14, >=2.13") == (2, 13)
    for path in SOURCE.rglob("*.py"):  # no second copy of a tested release anywhere in the package
        if path.name != "tested_versions.py":
            assert "3.15,<3.16" not in path.read_text() and '"keras": (3, 15)' not in path.read_text(), path


def test_the_private_apis_used_exist_in_this_keras():
    from layerflow.backend import load_keras

    load_keras()
    for dotted in KERAS_PRIVATE_APIS:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"{dotted} is gone from this Keras release"


def test_private_keras_imports_live_in_one_module():
    found = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.startswith("keras.src") for n in names):
                found.add(path.relative_to(SOURCE).as_posix())
    # one module per feature that needs them: the data adapter, and the fast training path
    assert found == set(KERAS_PRIVATE_API_MODULES), found


def _keras_private_attributes() -> set[str]:
    """The private attributes Keras's model classes set on themselves (``self._called = ...``)."""
    import inspect
    import re

    from layerflow.backend import load_keras

    keras = load_keras()
    inputs = keras.Input((1,))
    functional = type(keras.Model(inputs, keras.layers.Dense(1)(inputs)))
    names = set()
    for cls in (keras.Model, keras.Sequential, keras.layers.Layer, functional):
        for base in cls.__mro__:
            if base.__module__.startswith("keras"):
                names |= set(re.findall(r"self\.(_[a-z][a-z0-9_]*)\s*=", inspect.getsource(base)))
    return names


def test_no_private_keras_model_attributes_outside_the_one_module():
    private = _keras_private_attributes()
    assert {"_called", "_inputs_struct"} <= private  # what export read before it used public API
    found = []
    for path in SOURCE.rglob("*.py"):
        if path.relative_to(SOURCE).as_posix() in KERAS_PRIVATE_API_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno} {ast.unparse(node)}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in private
            ):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


@pytest.mark.slow
def test_autolog_records_evaluate_through_public_callbacks(runs_dir, write_script):
    script = write_script("""
        import numpy as np
        import layerflow as lf
        from layerflow import keras

        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("int64")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
        as_list = model.evaluate(x, y, verbose=0)
        as_dict = model.evaluate(x, y, verbose=0, return_dict=True)
        assert isinstance(as_list, list) and len(as_list) == 2, as_list
        assert sorted(as_dict) == ["accuracy", "loss"], as_dict
        print("evaluated", as_list)
    """)
    record = layerflow.training_run(script, echo=False)
    assert record["status"] == "completed", record.get("error")
    assert sorted(record["evaluation"]) == ["accuracy", "loss"]
    assert record["epochs_completed"] == 1 and "val_loss" in record["metrics"]
