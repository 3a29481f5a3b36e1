"""jieba's base dictionary, built once into a cache file that the Nqp1 job reads in milliseconds.

jieba builds its prefix dictionary (every word of its ``dict.txt`` with its frequency, and every
prefix of a word with frequency 0) from the text file each time a tokenizer starts: about a
second, longer than the counting itself. Rule ``jieba_cache`` builds it once, with jieba's own
parser (:meth:`jieba.Tokenizer.gen_pfdict`), and writes it partitioned by each entry's first two
characters, so that the counter loads only the entries that the text it segments can look up
(:class:`CachedDictionary`). The keywords are not in the cache: the counter adds them as jieba's
``add_word`` does, so a new keyword list needs no new cache.

File layout (``FORMAT``): ``MAGIC``; the length and CRC-32 of a header; the header (JSON:
format, jieba's dictionary fingerprint, ``total``, the one-character entries and an index of
the blocks); then one block per first character, a marshalled mapping from the first two
characters to the marshalled entries that start with them, each block with its CRC-32 in the
index. A file that is not such a cache, is truncated or damaged, or was built from a different
``dict.txt`` than the installed jieba's (size and SHA-256) raises :class:`CacheError`; the job
then builds the dictionary from jieba instead, so the counts never depend on the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import os
import struct
import zlib
from pathlib import Path

from nqp_resilience.errors import DataError

MAGIC = b"nqp-resilience jieba dictionary cache\n"
#: version of the layout above; a file of another version is rebuilt
FORMAT = 2
_HEAD = struct.Struct("<II")  # header length, header CRC-32


class CacheError(DataError):
    """The dictionary cache cannot be used (stale, damaged or not a cache)."""

    def __init__(self, path, problem):
        super().__init__(
            path,
            problem,
            hint="snakemake --forcerun jieba_cache rebuilds it (the counts do not depend on it)",
        )


def jieba_dictionary_file() -> Path:
    """jieba's ``dict.txt``, found without importing jieba (which takes a tenth of a second)."""
    import importlib.util

    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("jieba is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "dict.txt"


def _fingerprint(path: Path, data: bytes | None = None) -> dict:
    st = path.stat()
    if data is None:
        data = path.read_bytes()
    return {
        "size": len(data),
        "mtime_ns": st.st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _parse_jieba(data: bytes, name: str) -> tuple[dict, int]:
    """(FREQ, total) exactly as jieba builds them from ``dict.txt``."""
    import io

    from jieba import Tokenizer

    stream = io.BytesIO(data)
    stream.name = name  # jieba names the file in its parse errors
    return Tokenizer.gen_pfdict(stream)


@functools.lru_cache(maxsize=1)
def jieba_base_dictionary() -> MemoryDictionary:
    """The whole base dictionary built from the installed jieba (about a second, once per
    process): what :class:`CachedDictionary` gives, without a cache file."""
    path = jieba_dictionary_file()
    freq, total = _parse_jieba(path.read_bytes(), str(path))
    return MemoryDictionary(freq, total)


class MemoryDictionary:
    """The base dictionary in memory, every entry loaded."""

    complete = True

    def __init__(self, freq: dict, total: int):
        self.freq = freq
        self.total = total

    def initial(self) -> dict:
        """A private copy of the entries a counter starts from (here: all of them)."""
        return dict(self.freq)

    def bucket(self, bigram: str) -> dict:
        return {}


class CachedDictionary:
    """The base dictionary in a cache file: the one-character entries at once, the others by
    their first two characters, on demand (:meth:`bucket`)."""

    complete = False

    def __init__(self, path):
        import mmap

        self.path = str(path)
        try:
            with open(path, "rb") as fh:
                data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:  # ValueError: an empty file
            raise CacheError(path, f"cannot be read ({exc})") from None
        start = len(MAGIC) + _HEAD.size
        if len(data) < start or data[: len(MAGIC)] != MAGIC:
            raise CacheError(path, "not a jieba dictionary cache of this workflow")
        size, crc = _HEAD.unpack_from(data, len(MAGIC))
        header_bytes = data[start : start + size]
        if len(header_bytes) != size or zlib.crc32(header_bytes) != crc:
            raise CacheError(path, "damaged or truncated (header checksum)")
        try:
            header = json.loads(header_bytes)
            fmt = header["format"]
        except (EOFError, ValueError, TypeError, KeyError) as exc:
            raise CacheError(path, f"unreadable header ({exc})") from None
        if fmt != FORMAT:
            raise CacheError(path, f"layout version {fmt}, this code reads version {FORMAT}")
        if len(data) - start - size != header["blocks_size"]:
            raise CacheError(path, "damaged or truncated (size)")
        self._check_source(header["source"], header.get("jieba_version"))
        self._data = data
        self._base = start + size
        self.total = header["total"]
        self.singles = header["singles"]
        self._index = header["index"]
        self._blocks: dict[str, dict] = {}

    def _check_source(self, built: dict, version) -> None:
        dict_file = jieba_dictionary_file()
        st = dict_file.stat()
        if st.st_size == built["size"] and st.st_mtime_ns == built["mtime_ns"]:
            return  # the very file it was built from
        if st.st_size != built["size"] or _fingerprint(dict_file)["sha256"] != built["sha256"]:
            raise CacheError(
                self.path,
                f"built from another jieba dictionary (jieba {version}) than the installed "
                f"{dict_file.name} ({st.st_size:,} bytes)",
            )

    def initial(self) -> dict:
        return dict(self.singles)

    def bucket(self, bigram: str) -> dict:
        """Every entry that starts with the two characters ``bigram`` (``{}`` if none)."""
        block = self._blocks.get(bigram[0])
        if block is None:
            loc = self._index.get(bigram[0])
            if loc is None:
                block = {}
            else:
                offset, length, crc = loc
                raw = self._data[self._base + offset : self._base + offset + length]
                if zlib.crc32(raw) != crc:
                    raise CacheError(self.path, "damaged (block checksum)")
                block = marshal.loads(raw)
            self._blocks[bigram[0]] = block
        entries = block.get(bigram)
        return marshal.loads(entries) if entries is not None else {}


def build_cache(path) -> dict:
    """Build the base dictionary from the installed jieba and write it to ``path``
    atomically; returns a summary (entries, total, source fingerprint) for the job log."""
    import jieba

    from nqp_resilience.data.io import write_bytes

    dict_file = jieba_dictionary_file()
    data = dict_file.read_bytes()
    source = _fingerprint(dict_file, data)
    freq, total = _parse_jieba(data, str(dict_file))
    singles, grouped = {}, {}
    for word, f in freq.items():
        if len(word) == 1:
            singles[word] = f
        else:
            grouped.setdefault(word[0], {}).setdefault(word[:2], {})[word] = f
    index, chunks, offset = {}, [], 0
    for first in sorted(grouped):
        by_bigram = grouped[first]
        chunk = marshal.dumps({bg: marshal.dumps(by_bigram[bg]) for bg in sorted(by_bigram)})
        index[first] = (offset, len(chunk), zlib.crc32(chunk))
        chunks.append(chunk)
        offset += len(chunk)
    # the header as JSON: marshal writes an ASCII one-character string (a key of "singles" or
    # "index") with a flag for whether the process has interned it, which depends on the modules
    # it has imported, so its bytes would too
    header = json.dumps(
        {
            "format": FORMAT,
            "jieba_version": jieba.__version__,
            "source": source,
            "total": total,
            "singles": singles,
            "index": index,
            "blocks_size": offset,
        },
        ensure_ascii=False,
    ).encode()
    head = _HEAD.pack(len(header), zlib.crc32(header))
    write_bytes(path, b"".join([MAGIC, head, header, *chunks]))
    return {"entries": len(freq), "total": total, "jieba_version": jieba.__version__, **source}


def open_dictionary(path=None, log=None):
    """The base dictionary from the cache at ``path``; without a path, or when the cache cannot
    be used (:class:`CacheError`, logged as a warning on ``log``), built from jieba."""
    if path is not None and os.fspath(path):
        try:
            return CachedDictionary(path)
        except CacheError as exc:
            if log is not None:
                log.warning("%s\n  the dictionary is built from jieba instead (slower)", exc)
    return jieba_base_dictionary()
