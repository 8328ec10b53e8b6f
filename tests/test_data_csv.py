"""csv_dataset: explicit types, header handling, bad values located or skipped, compressed files."""

import bz2
import gzip

import numpy as np
import pytest

import layerflow as lf
from layerflow.data import CsvFormatError
from layerflow.data.csv_files import TYPE_NAMES

EXPECTED_DTYPES = {
    "float": np.float32,
    "float32": np.float32,
    "double": np.float64,
    "float64": np.float64,
    "int": np.int64,
    "int64": np.int64,
    "int32": np.int32,
    "bool": np.bool_,
    "string": np.object_,
    "str": np.object_,
    "category": np.object_,
}


def test_every_documented_type_name_gives_its_dtype(tmp_path):
    assert set(TYPE_NAMES) == set(EXPECTED_DTYPES)
    docstring = lf.data.csv_dataset.__doc__
    for name in EXPECTED_DTYPES:
        assert f"``{name}``" in docstring  # every name the docstring lists is tested here
    path = tmp_path / "t.csv"
    path.write_text("v\n1\n0\n")
    for name, dtype in EXPECTED_DTYPES.items():
        batch = next(iter(lf.data.csv_dataset(path, batch_size=2, column_types={"v": name})))
        assert batch["v"].dtype == dtype, name
        expected = [True, False] if name == "bool" else (["1", "0"] if dtype == np.object_ else [1, 0])
        assert batch["v"].tolist() == expected, name
    third = lf.data.csv_dataset(path, column_types={"v": "double"}).to_frame()
    assert third["v"].dtype == np.float64


def test_unknown_type_name_lists_the_known_ones(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("v\n1\n")
    with pytest.raises(ValueError) as info:
        lf.data.csv_dataset(path, column_types={"v": "decimal"})
    message = str(info.value)
    assert "column_types['v'] = 'decimal' is not a known type" in message
    assert "bool, category, double, float, float32, float64, int, int32, int64, str, string" in message
    assert isinstance(info.value, lf.LayerflowError)


def test_column_names_replace_a_header_and_a_header_is_never_data(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b\n1,2.5\n3,4.5\n")
    read = lf.data.csv_dataset(path, column_names=["x", "y"]).to_frame()
    assert list(read.columns) == ["x", "y"]
    assert read["x"].tolist() == [1, 3] and read["x"].dtype == np.int64
    assert read["y"].tolist() == [2.5, 4.5]
    with pytest.raises(CsvFormatError, match=r"h.csv, line 1: header=False, but the first line names the columns"):
        lf.data.csv_dataset(path, header=False, column_names=["a", "b"]).to_frame()
    with pytest.raises(CsvFormatError, match=r"the header has 2 columns \['a', 'b'\], but column_names gives 3"):
        lf.data.csv_dataset(path, column_names=["x", "y", "z"]).to_frame()
    headerless = tmp_path / "n.csv"
    headerless.write_text("1,2.5\n3,4.5\n")
    assert lf.data.csv_dataset(headerless, header=False, column_names=["x", "y"]).to_frame()["x"].tolist() == [1, 3]
    with pytest.raises(ValueError, match="header='yes' must be True or False"):
        lf.data.csv_dataset(path, header="yes")


def _many_blocks(path, bad_line: int, value: str = "oops", rows: int = 3000):
    lines = ["a,b,c"] + [f"{i},{i * 0.5},x{i % 3}" for i in range(rows)]
    lines[bad_line - 1] = f"7,{value},x1"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("typed", [True, False])
def test_a_bad_value_names_file_line_and_column_on_threads(tmp_path, typed):
    path = tmp_path / "bad.csv"
    _many_blocks(path, bad_line=2501)  # far from the first block: inferred as a float column there
    types = {"b": "float"} if typed else None
    with pytest.raises(CsvFormatError) as info:
        lf.data.csv_dataset(path, column_types=types, block_bytes=4096).to_frame()
    message = str(info.value)
    assert f"{path}, line 2501, column 'b': value 'oops' is not a valid" in message
    assert "skip_malformed=True" in message
    with pytest.raises(CsvFormatError, match=r"bad.csv, line 2501, column 'b': value 'oops'"):
        lf.data.csv_dataset(path, column_types=types, select_columns=["c", "b"], block_bytes=4096).to_frame()


def test_a_missing_value_in_an_explicit_int_column_is_located(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\n1,2\n3,NA\n")
    with pytest.raises(CsvFormatError, match=r"m.csv, line 3, column 'b': a missing value is not a valid int32"):
        lf.data.csv_dataset(path, column_types={"b": "int32"}).to_frame()
    ds = lf.data.csv_dataset(path, column_types={"b": "int32"}, skip_malformed=True)
    assert ds.to_frame()["b"].tolist() == [2] and ds.stats["bad_values_skipped"] == 1


def test_skip_malformed_skips_and_counts_bad_values_and_bad_rows(tmp_path):
    path = tmp_path / "bad.csv"
    _many_blocks(path, bad_line=2501)
    lines = path.read_text().splitlines()
    lines[100] = "1,2"  # a row with too few fields (line 101)
    lines[2800] = "9,nan-ish,x2"  # a second bad value (line 2801)
    path.write_text("\n".join(lines) + "\n")
    ds = lf.data.csv_dataset(path, column_types={"b": "double"}, skip_malformed=True, block_bytes=4096)
    read = ds.to_frame()
    kept = [i for i in range(3000) if i + 2 not in (101, 2501, 2801)]
    assert read["a"].tolist() == kept
    assert read["b"].tolist() == [i * 0.5 for i in kept] and read["b"].dtype == np.float64
    assert ds.stats["malformed_rows_skipped"] == 3 and ds.stats["bad_values_skipped"] == 2
    assert len(ds.to_frame()) == 2997 and ds.stats["malformed_rows_skipped"] == 3  # counted afresh each pass
    inferred = lf.data.csv_dataset(path, skip_malformed=True, block_bytes=4096)
    assert inferred.to_frame()["a"].tolist() == kept and inferred.stats["malformed_rows_skipped"] == 3


def test_compressed_csv_and_text_files(tmp_path):
    content = "a,city\n1.5,x\n2.5,y\n"
    with gzip.open(tmp_path / "p.csv.gz", "wt") as stream:
        stream.write(content)
    with bz2.open(tmp_path / "q.csv.bz2", "wt") as stream:
        stream.write(content)
    read = lf.data.csv_dataset([tmp_path / "p.csv.gz", tmp_path / "q.csv.bz2"]).to_frame()
    assert read["a"].tolist() == [1.5, 2.5, 1.5, 2.5] and read["city"].tolist() == ["x", "y", "x", "y"]
    with gzip.open(tmp_path / "bad.csv.gz", "wt") as stream:
        stream.write("a,b\n1,2\n3,oops\n")
    with pytest.raises(CsvFormatError, match=r"bad.csv.gz, line 3, column 'b'"):
        lf.data.csv_dataset(tmp_path / "bad.csv.gz", column_types={"b": "float"}).to_frame()
    with gzip.open(tmp_path / "t.txt.gz", "wt") as stream:
        stream.write("one\ntwo\n")
    with bz2.open(tmp_path / "t.txt.bz2", "wt") as stream:
        stream.write("three\n")
    lines = lf.data.text_line_dataset([tmp_path / "t.txt.gz", tmp_path / "t.txt.bz2"])
    assert [r["line"] for r in lines] == ["one", "two", "three"]
