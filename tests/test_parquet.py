"""The Parquet column reader of the specification jobs (``nqp_resilience.data.parquet``).

``read_columns`` reads the Arrow buffers directly (no pandas), so the cases pyarrow's own
conversion would handle for free are checked here: several row groups, chunk offsets, nulls
in numeric and string columns, ``large_string``, integer widths, and the errors.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nqp_resilience.data.parquet import read_columns
from nqp_resilience.errors import ConfigError


def _write(tmp_path, table: pa.Table, **kwargs):
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, **kwargs)
    return path


def test_multi_chunk_file_reads_every_row_in_order(tmp_path):
    n = 1000
    table = pa.table(
        {
            "x": pa.array(np.arange(n, dtype=np.float64) / 4),
            "k": pa.array(np.arange(n, dtype=np.int64) * 3),
            "s": pa.array([f"c{i}" for i in range(n)]),
        }
    )
    path = _write(tmp_path, table, row_group_size=7)
    assert pq.ParquetFile(path).num_row_groups > 100
    # several row groups become several chunks of the column
    assert pq.read_table(path).column("x").num_chunks > 1
    out = read_columns(path, ["x", "k", "s"])
    np.testing.assert_array_equal(out["x"], np.arange(n) / 4)
    np.testing.assert_array_equal(out["k"], np.arange(n) * 3)
    assert out["k"].dtype == np.int64
    assert out["s"].tolist() == [f"c{i}" for i in range(n)]


def test_nulls_in_numeric_columns_become_nan(tmp_path):
    values = [1.5, None, 3.0, None, 5.25, 6.0, None, 8.0, 9.0, 10.0]
    ints = [1, 2, None, 4, 5, 6, 7, 8, 9, None]
    table = pa.table({"x": pa.array(values, pa.float64()), "i": pa.array(ints, pa.int64())})
    path = _write(tmp_path, table, row_group_size=3)  # null bitmaps at chunk offsets
    out = read_columns(path, ["x", "i"])
    expected_x = np.array([np.nan if v is None else v for v in values])
    np.testing.assert_array_equal(out["x"], expected_x)  # nan positions compare equal
    # an integer column with nulls becomes float64 with nan (numpy ints have no missing value)
    assert out["i"].dtype == np.float64
    np.testing.assert_array_equal(out["i"], [np.nan if v is None else v for v in ints])


def test_nulls_in_string_columns_become_none(tmp_path):
    values = ["北京市", None, "", "天津市", None, "石家庄市", "唐山市"]
    path = _write(tmp_path, pa.table({"s": pa.array(values, pa.string())}), row_group_size=2)
    out = read_columns(path, ["s"])
    assert out["s"].dtype == object
    assert out["s"].tolist() == values  # None stays None, "" stays "", UTF-8 decoded


def test_large_string_column(tmp_path):
    long = "新质生产力" * 5000  # 75,000 bytes in one cell
    values = [long, None, "a", long[::-1]]
    table = pa.table({"s": pa.array(values, pa.large_string())})
    path = _write(tmp_path, table, row_group_size=3)
    assert pq.read_schema(path).field("s").type == pa.large_string()
    out = read_columns(path, ["s"])
    assert out["s"].tolist() == values


@pytest.mark.parametrize(
    ("arrow_type", "numpy_type"),
    [
        (pa.int8(), np.int8),
        (pa.int16(), np.int16),
        (pa.int32(), np.int32),
        (pa.int64(), np.int64),
        (pa.uint8(), np.uint8),
        (pa.float32(), np.float32),
        (pa.float64(), np.float64),
    ],
)
def test_numeric_types_keep_their_dtype_without_nulls(tmp_path, arrow_type, numpy_type):
    values = [0, 1, 2, 3, 4, 5, 6, 7, 100, 127]
    path = _write(tmp_path, pa.table({"v": pa.array(values, arrow_type)}), row_group_size=4)
    out = read_columns(path, ["v"])
    assert out["v"].dtype == numpy_type
    np.testing.assert_array_equal(out["v"], values)


def test_bool_columns_are_refused_naming_the_type(tmp_path):
    # booleans are bit-packed in Arrow; the analysis panel stores indicators as integers
    path = _write(tmp_path, pa.table({"b": pa.array([True, False, True])}))
    with pytest.raises(TypeError, match="unsupported column type bool"):
        read_columns(path, ["b"])


def test_missing_column_names_the_file_and_the_available_columns(tmp_path):
    path = _write(tmp_path, pa.table({"Resil": [0.1, 0.2], "Nqp": [0.3, 0.4]}))
    with pytest.raises(ConfigError) as info:
        read_columns(path, ["Resil", "Nqq", "GDP"])
    message = str(info.value)
    assert "['Nqq', 'GDP']" in message
    assert str(path) in message
    assert "available: Nqp, Resil" in message


def test_repeated_column_is_read_once_and_only_requested_columns_are_returned(tmp_path):
    path = _write(tmp_path, pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]}))
    out = read_columns(path, ["b", "a", "b"])
    assert list(out) == ["b", "a"]
    np.testing.assert_array_equal(out["a"], [1.0, 2.0])


def test_empty_file_gives_empty_arrays(tmp_path):
    table = pa.table({"x": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    out = read_columns(_write(tmp_path, table), ["x", "s"])
    assert len(out["x"]) == 0 and len(out["s"]) == 0


def test_returned_arrays_are_writable_copies(tmp_path):
    # np.frombuffer views Arrow's read-only memory; the jobs assign into the arrays they get
    path = _write(tmp_path, pa.table({"x": [1.0, 2.0, 3.0]}))
    out = read_columns(path, ["x"])
    out["x"][0] = 9.0
    assert read_columns(path, ["x"])["x"][0] == 1.0


def test_sliced_arrow_chunks_respect_their_offset():
    # a chunk may start inside its buffers (offset > 0): values, null bits and string offsets
    # must all be read from that offset
    from nqp_resilience.data.parquet import _chunk_to_numpy

    numbers = pa.array([0.0, 1.0, None, 3.0, None, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).slice(3, 6)
    np.testing.assert_array_equal(_chunk_to_numpy(numbers), [3.0, np.nan, 5.0, 6.0, 7.0, 8.0])
    strings = pa.array(["a", "bb", None, "ddd", "", None, "g"]).slice(1, 5)
    assert _chunk_to_numpy(strings).tolist() == ["bb", None, "ddd", "", None]
    large = pa.array(["a", "bb", None, "ddd"], pa.large_string()).slice(1, 3)
    assert _chunk_to_numpy(large).tolist() == ["bb", None, "ddd"]
    ints = pa.array([1, 2, 3, 4, 5], pa.int32()).slice(2, 2)
    assert _chunk_to_numpy(ints).tolist() == [3, 4]


def _mixed_table(n=500) -> pa.Table:
    rng = np.random.default_rng(5)
    x = rng.normal(size=n)
    return pa.table(
        {
            "x": pa.array(x, mask=x > 1.5),
            "k": pa.array(rng.integers(-9, 9, n), type=pa.int32()),
            "s": pa.array([None if i % 7 == 0 else f"城市{i}" for i in range(n)]),
            "big": pa.array([f"v{i}" for i in range(n)], type=pa.large_string()),
            "d": pa.array([f"g{i % 3}" for i in range(n)]).dictionary_encode(),
        },
        metadata={b"source": b"test"},
    )


@pytest.mark.parametrize("row_group_size", [None, 64])
def test_the_compiled_reader_gives_parquetfiles_table(tmp_path, row_group_size):
    from nqp_resilience.data.parquet import _open

    path = _write(tmp_path, _mixed_table(), row_group_size=row_group_size)
    names, read = _open(path)
    pf = pq.ParquetFile(path)
    assert names == pf.schema_arrow.names
    for columns in (names, ["s", "x"], ["d"], ["k", "k"], []):
        ours, theirs = read(columns), pf.read(columns=columns)
        assert ours.equals(theirs) and ours.schema.equals(theirs.schema, check_metadata=True)


def test_a_file_the_reader_refuses_gets_parquetfiles_error(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file at all")
    with pytest.raises(pa.ArrowInvalid) as ours:
        read_columns(bad, ["x"])
    with pytest.raises(pa.ArrowInvalid) as theirs:
        pq.ParquetFile(bad)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(FileNotFoundError):
        read_columns(tmp_path / "missing.parquet", ["x"])


def test_reading_imports_neither_pyarrow_parquet_nor_pyarrow_fs(tmp_path):
    import subprocess
    import sys

    path = _write(tmp_path, _mixed_table(50))
    code = (
        "import sys; from nqp_resilience.data.parquet import read_columns; "
        f"out = read_columns({str(path)!r}, ['x', 's']); "
        "print(len(out['x']), 'pyarrow.parquet' in sys.modules, 'pyarrow.fs' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["50", "False", "False"]
