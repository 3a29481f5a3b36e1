"""Read Parquet columns into numpy arrays without importing pandas.

``pyarrow``'s ``to_numpy``/``compute`` paths import pandas (about 0.4 s per process); a
specification job only needs a few numeric columns and the city codes, so this module reads
the Arrow buffers directly. Missing numeric values become ``nan``.
"""

from __future__ import annotations

import numpy as np

_NUMERIC = {
    "double": np.float64,
    "float": np.float32,
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "int16": np.int16,
    "uint8": np.uint8,
    "bool": None,
}


def _validity(chunk) -> np.ndarray | None:
    buf = chunk.buffers()[0]
    if buf is None or chunk.null_count == 0:
        return None
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    return bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)


def _chunk_to_numpy(chunk) -> np.ndarray:
    typ = str(chunk.type)
    n, off = len(chunk), chunk.offset
    if typ in ("string", "large_string", "utf8", "large_utf8"):
        offsets_dtype = np.int64 if typ.startswith("large") else np.int32
        _, obuf, dbuf = chunk.buffers()
        offsets = np.frombuffer(obuf, dtype=offsets_dtype)[off : off + n + 1]
        data = bytes(dbuf) if dbuf is not None else b""
        valid = _validity(chunk)
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = (
                None
                if valid is not None and not valid[i]
                else data[offsets[i] : offsets[i + 1]].decode("utf-8")
            )
        return out
    if typ not in _NUMERIC or typ == "bool":
        raise TypeError(f"unsupported column type {typ}")
    dtype = _NUMERIC[typ]
    values = np.frombuffer(chunk.buffers()[1], dtype=dtype)[off : off + n]
    valid = _validity(chunk)
    if valid is None:
        return values.copy()
    out = values.astype(np.float64)
    out[~valid] = np.nan
    return out


def _open(path):
    """``(column names, read(columns) -> pyarrow.Table)`` of a Parquet file.

    A local file is opened by pyarrow's compiled reader itself, with the options
    ``pyarrow.parquet.ParquetFile(path)`` gives it, and read as ``ParquetFile.read(columns)``
    reads it (the same reader, the same table). This spares a job the import of
    ``pyarrow.parquet``, which imports ``pyarrow.fs`` (ssl, S3, Azure: about 15 ms). Anything
    else (another pyarrow, a path that is not a local file, a file the reader refuses) goes
    through ``ParquetFile``, which then raises its own error.
    """
    import os

    try:
        from pyarrow._parquet import ParquetReader

        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        reader = ParquetReader()
        reader.open(
            os.fspath(path),
            use_memory_map=False,
            buffer_size=0,
            pre_buffer=True,
            arrow_extensions_enabled=True,
        )
        index: dict[str, list[int]] = {}
        for i, column_path in enumerate(reader.column_paths):
            index.setdefault(column_path[0], []).append(i)

        def read(columns):
            wanted = [i for name in columns for i in index.get(name, [])]
            return reader.read_all(column_indices=wanted, use_threads=True)

        return reader.schema_arrow.names, read
    except Exception:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        return pf.schema_arrow.names, lambda columns: pf.read(columns=columns)


def read_columns(path, columns: list[str]) -> dict[str, np.ndarray]:
    """The requested columns of a Parquet file as numpy arrays (strings as object arrays)."""
    names, read = _open(path)
    available = set(names)
    missing = [c for c in columns if c not in available]
    if missing:
        from nqp_resilience.errors import ConfigError

        raise ConfigError(
            "specs",
            f"variable(s) {missing} are not in {path}",
            hint=f"available: {', '.join(sorted(available))}",
        )
    table = read(list(dict.fromkeys(columns)))
    out = {}
    for name in dict.fromkeys(columns):
        col = table.column(name)
        parts = [_chunk_to_numpy(c) for c in col.chunks]
        out[name] = np.concatenate(parts) if parts else np.array([])
    return out
