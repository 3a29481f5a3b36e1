"""Kept font subsets for the PDF figures (docs/figures.md, "Font subsets").

A PDF figure embeds each font it uses (DejaVu Sans, regular and bold) as a subset of the glyphs
it draws. matplotlib cuts the subset with fontTools
(``matplotlib.backends._backend_pdf_ps.get_glyphs_subset``, then ``font_as_file``): fontTools
decompiles the font's layout tables for every subset, about 0.05 s per font, and importing
``fontTools.subset`` costs about 0.06 s more. A figure job spends more time there than drawing.

The subset's bytes depend only on the font file, the glyphs, and the fontTools and matplotlib
versions. :func:`kept_subsets` therefore keeps each subset it cuts in a folder, under a
SHA-256 of exactly those (the font file's content, its face index, the sorted glyph ids and
both versions), and a later figure that needs the same subset reads it back instead. The PDF
holds the very bytes fontTools wrote, so a figure is byte-identical with or without the folder
(``tests/test_font_subsets.py``). ``fontTools.subset`` is imported only when a subset is cut.

A figure job keeps its subsets in ``.snakemake/nqp_resilience/font_subsets/`` of the workflow
folder: a rerun of a figure whose labels have not changed (new estimates, another spec) cuts no
font. Any other caller, and any folder that cannot be read or written, cuts every subset as
matplotlib does.

The folder is bounded: a subset read back is marked as used (its modification time), and a job
that has cut a new one then removes the subsets used longest ago until the folder holds at most
:data:`MAX_BYTES` (:func:`prune`). A removed subset is cut again when a figure needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from contextlib import contextmanager, nullcontext
from io import BytesIO
from pathlib import Path

from nqp_resilience.data.io import WORKFLOW_CACHE, write_bytes

#: The folder of a figure job's kept subsets, relative to the workflow folder.
FOLDER = WORKFLOW_CACHE / "font_subsets"
#: First line of a kept subset: the format of this module (changing it drops every kept subset).
MAGIC = b"nqp-resilience font subset 1\n"
#: The most bytes the folder keeps (a subset of the two DejaVu faces takes 4-20 KB).
MAX_BYTES = 16 * 2**20


class _Subset:
    """What ``get_glyphs_subset`` yields: the subset font (here its bytes) and the glyph map."""

    def __init__(self, data: bytes, glyph_index_map: dict[int, int]):
        self.font = _FontBytes(data)
        self.glyph_index_map = glyph_index_map


class _FontBytes:
    """A subset font as the bytes ``font_as_file`` would have written."""

    def __init__(self, data: bytes):
        self.data = data


def _lazy_fonttools_subset() -> None:
    """Put a lazily loaded ``fontTools.subset`` in ``sys.modules`` (the standard library's
    ``importlib.util.LazyLoader``), so that matplotlib's PDF backend can import it by name and
    the module runs only when a subset is cut. Nothing happens if it is already imported or
    cannot be found."""
    import importlib.util
    import sys

    name = "fontTools.subset"
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None:
        return
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    sys.modules["fontTools"].subset = module


def subset_key(fontfile, glyphs, versions: tuple[str, str]) -> str | None:
    """The SHA-256 of a subset's inputs: the font file's bytes, its face index, the sorted glyph
    ids and the (fontTools, matplotlib) versions; None if the font file cannot be read."""
    try:
        content = hashlib.sha256(Path(fontfile).read_bytes()).hexdigest()
    except OSError:
        return None
    face = getattr(fontfile, "face_index", 0)
    ids = sorted({int(g) for g in glyphs})
    text = json.dumps([MAGIC.decode().strip(), content, face, ids, list(versions)])
    return hashlib.sha256(text.encode()).hexdigest()


def encode(glyph_index_map: dict[int, int], data: bytes) -> bytes:
    """A kept subset: :data:`MAGIC`, the number of glyph pairs and the font's length, the glyph
    map (old id, new id; sorted), the font's bytes; integers as unsigned 32-bit big-endian."""
    pairs = sorted((int(k), int(v)) for k, v in glyph_index_map.items())
    head = struct.pack(">II", len(pairs), len(data))
    return MAGIC + head + b"".join(struct.pack(">II", k, v) for k, v in pairs) + data


def decode(kept: bytes) -> tuple[dict[int, int], bytes]:
    """The glyph map and the font's bytes of a kept subset; ValueError if it is not one."""
    start = len(MAGIC) + 8
    if not kept.startswith(MAGIC) or len(kept) < start:
        raise ValueError("not a kept font subset")
    n_pairs, size = struct.unpack_from(">II", kept, len(MAGIC))
    if len(kept) != start + 8 * n_pairs + size:
        raise ValueError("a truncated or damaged font subset")
    pairs = struct.iter_unpack(">II", kept[start : start + 8 * n_pairs])
    return dict(pairs), kept[start + 8 * n_pairs :]


def prune(folder, limit: int = MAX_BYTES) -> int:
    """Remove the kept subsets of ``folder`` used longest ago (oldest modification time first;
    ties by name) until it holds at most ``limit`` bytes of them; how many were removed. A file
    that another job removes meanwhile is passed over; a folder that cannot be read or written
    is left as it is."""
    entries = []
    try:
        with os.scandir(folder) as found:
            for entry in found:
                if not entry.name.endswith(".bin"):
                    continue
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                entries.append((stat.st_mtime_ns, entry.name, stat.st_size))
    except OSError:
        return 0
    total = sum(size for _, _, size in entries)
    removed = 0
    for _, name, size in sorted(entries):
        if total <= limit:
            break
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
        except OSError:
            break
        else:
            removed += 1
        total -= size
    return removed


@contextmanager
def kept_subsets(folder=None, limit: int | None = None):
    """Within the block, the PDF backend reads a subset it has cut before from ``folder``
    (default :data:`FOLDER` when the current folder is a workflow folder, i.e. has
    ``.snakemake``; else nothing is kept) and keeps every subset it cuts there. The backend's
    functions are restored on leaving the block; if a subset was kept in it, the folder is then
    pruned to ``limit`` bytes (default :data:`MAX_BYTES`; :func:`prune`)."""
    if folder is None and not WORKFLOW_CACHE.parent.is_dir():
        yield
        return
    folder = FOLDER if folder is None else Path(folder)
    _lazy_fonttools_subset()
    import matplotlib
    from matplotlib.backends import _backend_pdf_ps as pdf_ps

    from nqp_resilience.data.io import installed_version

    versions = (installed_version("fonttools") or "unknown", matplotlib.__version__)
    cut, as_file = pdf_ps.get_glyphs_subset, pdf_ps.font_as_file
    written = []

    def get_glyphs_subset(fontfile, glyphs):
        key = subset_key(fontfile, glyphs, versions)
        if key is None:
            return cut(fontfile, glyphs)
        path = folder / f"{key}.bin"
        try:
            glyph_index_map, data = decode(path.read_bytes())
        except (OSError, ValueError):
            with cut(fontfile, glyphs) as subset:
                data = as_file(subset.font).getvalue()
                glyph_index_map = dict(subset.glyph_index_map)
            try:
                write_bytes(path, encode(glyph_index_map, data))
                written.append(path)
            except OSError:
                pass  # a read-only folder: the subset is cut every time
        else:
            try:
                os.utime(path)  # used now: pruned last
            except OSError:
                pass
        return nullcontext(_Subset(data, glyph_index_map))

    def font_as_file(font):
        if isinstance(font, _FontBytes):
            return BytesIO(font.data)
        return as_file(font)

    pdf_ps.get_glyphs_subset, pdf_ps.font_as_file = get_glyphs_subset, font_as_file
    try:
        yield
    finally:
        pdf_ps.get_glyphs_subset, pdf_ps.font_as_file = cut, as_file
        if written:
            prune(folder, MAX_BYTES if limit is None else limit)
