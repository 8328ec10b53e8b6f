import json
import sys

import pytest

import layerflow as lf
from layerflow.flags import FLAGS_ENV, FlagError, extract_cli_flags


def declare(argv=(), **kwargs):
    return lf.flags(argv=list(argv), **kwargs)


def test_defaults_and_inferred_types(monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    flags = declare(dropout=0.4, units=256, optimizer="rmsprop", augment=False)
    assert flags.dropout == 0.4 and flags["units"] == 256 and flags.optimizer == "rmsprop"
    assert flags.augment is False and len(flags) == 4
    frame = flags.to_frame()
    assert frame.set_index("name")["type"].to_dict() == {
        "dropout": "float",
        "units": "int",
        "optimizer": "str",
        "augment": "bool",
    }
    assert set(frame["source"]) == {"default"}


def test_command_line_values_are_parsed_to_their_types(monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    flags = declare(
        ["--flag", "dropout=0.25", "--flag=units=64", "--flag", "augment=yes"], dropout=0.4, units=256, augment=False
    )
    assert (flags.dropout, flags.units, flags.augment) == (0.25, 64, True)
    assert flags.to_frame().set_index("name")["source"]["units"] == "command line"


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("units=12.5", "Flag 'units' (command line): value '12.5' is not a valid int"),
        ("dropout=high", "Flag 'dropout' (command line): value 'high' is not a valid float"),
        ("augment=maybe", "Flag 'augment' (command line): value 'maybe' is not a valid bool"),
    ],
)
def test_wrong_type_names_flag_value_and_type(monkeypatch, assignment, message):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    with pytest.raises(FlagError) as info:
        declare(["--flag", assignment], dropout=0.4, units=256, augment=False)
    assert message in str(info.value)


def test_unknown_flag_suggests_the_close_one(monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    with pytest.raises(FlagError, match="Unknown flag 'dropuot'.*Did you mean 'dropout'"):
        declare(["--flag", "dropuot=0.3"], dropout=0.4)
    with pytest.raises(AttributeError, match="Unknown flag 'unitz'"):
        declare(dropout=0.4).unitz


def test_malformed_command_line_flags():
    with pytest.raises(FlagError, match="expected --flag name=value"):
        extract_cli_flags(["--flag", "dropout"])
    with pytest.raises(FlagError, match="has no value"):
        extract_cli_flags(["--flag"])
    assert extract_cli_flags(["-v", "--flag", "a=1", "x"]) == ({"a": "1"}, ["-v", "x"])


def test_explicit_declarations(monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    flags = lf.flags(
        lf.flag("checkpoint", None, type="str", description="where to save"), lf.flag("rate", 1, type=float), argv=[]
    )
    assert flags.checkpoint is None and flags.rate == 1.0 and isinstance(flags.rate, float)
    with pytest.raises(FlagError, match="type 'complex' is not supported"):
        lf.flag("z", 1, type="complex")
    with pytest.raises(FlagError, match="give type= explicitly"):
        lf.flags(nothing=None, argv=[])
    with pytest.raises(FlagError, match="not a valid identifier"):
        lf.flag("my-flag", 1)


def test_precedence_defaults_yaml_command_line_call(tmp_path, monkeypatch):
    yml = tmp_path / "flags.yml"
    yml.write_text("dropout: 0.2\nunits: 128\nepochs: {default: 5, type: int, description: passes}\nname: base\n")
    monkeypatch.setenv(
        FLAGS_ENV, json.dumps({"command_line": {"units": "96", "name": "cli"}, "call": {"name": "call"}})
    )
    flags = lf.flags(dropout=0.5, units=256, file=yml, argv=["--flag", "dropout=0.1"])
    # the script's own command line and layerflow run's command line both count as "command line"
    assert flags.dropout == 0.1 and flags.units == 96 and flags.epochs == 5 and flags.name == "call"
    sources = flags.to_frame().set_index("name")["source"].to_dict()
    assert sources == {
        "dropout": "command line",
        "units": "command line",
        "epochs": "flags.yml",
        "name": "training_run(flags=)",
    }


def test_bad_flags_file(tmp_path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    bad = tmp_path / "flags.yml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(FlagError, match="must map flag names"):
        lf.flags(file=bad, argv=[])
    bad.write_text("units: [1, 2\n")
    with pytest.raises(FlagError, match="not valid YAML"):
        lf.flags(file=bad, argv=[])
    bad.write_text("units: {default: 1, kind: int}\n")
    with pytest.raises(FlagError, match="unknown keys"):
        lf.flags(file=bad, argv=[])
    bad.write_text("units: 32\n")
    with pytest.raises(FlagError, match=r"Flag 'units' \(.*flags.yml\): value 32 is not a valid bool"):
        lf.flags(lf.flag("units", True), file=bad, argv=[])
    with pytest.raises(FlagError, match="does not exist"):
        lf.flags(file=tmp_path / "missing.yml", argv=[])


def test_call_values_must_have_the_right_type(monkeypatch):
    monkeypatch.setenv(FLAGS_ENV, json.dumps({"call": {"units": [1, 2]}}))
    with pytest.raises(FlagError, match=r"Flag 'units' \(training_run\(flags=\)\): value \[1, 2\] is not a valid int"):
        lf.flags(units=8, argv=[])


def test_flags_are_removed_from_sys_argv(monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "--flag", "units=3", "--verbose"])
    assert lf.flags(units=1).units == 3
    assert sys.argv == ["train.py", "--verbose"]
