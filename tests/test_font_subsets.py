"""Kept font subsets of the PDF figures (nqp_resilience.outputs.font_subsets): a figure job
reads a subset it has cut before instead of cutting it again, and every file keeps its bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import test_figures as T
from nqp_resilience.outputs import figures as F
from nqp_resilience.outputs import font_subsets as FS

FIGURES = ("coefficients", "trends", "weights")


def _files(out) -> dict[str, bytes]:
    paths = [getattr(out, f"{n}_{ext}") for n in FIGURES for ext in ("pdf", "png")]
    paths += [*out.pscore_pdf, *out.pscore_png]
    return {Path(p).name: Path(p).read_bytes() for p in paths}


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory):
    return T._job_inputs(tmp_path_factory.mktemp("inputs"))[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, job_inputs):
    """Every figure of a job drawn outside a workflow folder: no subset kept or read."""
    import os

    here = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("plain"))
    try:
        out = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], Path("out").absolute())
        assert not FS.FOLDER.exists()
        return _files(out)
    finally:
        os.chdir(here)


@pytest.fixture
def workflow_folder(tmp_path, monkeypatch):
    """A workflow folder (one with ``.snakemake``) as the current folder."""
    (tmp_path / ".snakemake").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _count_cuts(monkeypatch) -> list:
    """Record every subset matplotlib's own function cuts."""
    from matplotlib.backends import _backend_pdf_ps as pdf_ps

    cuts = []
    cut = pdf_ps.get_glyphs_subset

    def counting(fontfile, glyphs):
        cuts.append((str(fontfile), sorted(glyphs)))
        return cut(fontfile, glyphs)

    monkeypatch.setattr(pdf_ps, "get_glyphs_subset", counting)
    return cuts


def test_a_rerun_reads_every_subset_back_and_writes_the_same_bytes(
    workflow_folder, job_inputs, reference, monkeypatch
):
    cuts = _count_cuts(monkeypatch)
    first = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "a")
    kept = sorted(p.name for p in FS.FOLDER.iterdir())
    # the regular and the bold face at least; no subset is cut twice within the job
    assert len(kept) >= 2 and len(cuts) == len(kept)
    assert len({(f, tuple(g)) for f, g in cuts}) == len(cuts)
    assert _files(first) == reference

    n_cut = len(cuts)
    again = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "b")
    assert len(cuts) == n_cut  # nothing cut
    assert sorted(p.name for p in FS.FOLDER.iterdir()) == kept
    assert _files(again) == reference


def test_a_damaged_or_foreign_subset_file_is_cut_again(
    workflow_folder, job_inputs, reference, monkeypatch
):
    T._figures_job(job_inputs, [T.PSM_NN], workflow_folder / "a")
    kept = sorted(FS.FOLDER.iterdir())
    truncated, foreign = kept[0], kept[1]
    truncated.write_bytes(truncated.read_bytes()[:-100])
    foreign.write_bytes(b"%PDF-1.4 something else entirely")
    cuts = _count_cuts(monkeypatch)
    out = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "b")
    assert {Path(f).name for f, _ in cuts} >= {"DejaVuSans.ttf"}
    assert len(cuts) >= 2
    for path in (truncated, foreign):
        FS.decode(path.read_bytes())  # rewritten whole
    assert _files(out) == reference


def test_a_folder_that_cannot_be_written_cuts_every_time(
    workflow_folder, job_inputs, reference, monkeypatch
):
    FS.FOLDER.parent.mkdir(parents=True)
    FS.FOLDER.write_text("a file where the folder would be")
    cuts = _count_cuts(monkeypatch)
    out = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "a")
    assert _files(out) == reference
    n_cut = len(cuts)
    T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "b")
    assert n_cut >= 2 and len(cuts) == 2 * n_cut


def test_outside_a_workflow_folder_nothing_is_kept(tmp_path, monkeypatch, job_inputs):
    monkeypatch.chdir(tmp_path)
    T._figures_job(job_inputs, [T.PSM_NN], tmp_path / "out")
    assert not (tmp_path / ".snakemake").exists()


def test_the_backend_is_restored_after_the_block_even_on_an_error(tmp_path):
    from matplotlib.backends import _backend_pdf_ps as pdf_ps

    before = pdf_ps.get_glyphs_subset, pdf_ps.font_as_file
    with pytest.raises(RuntimeError, match="boom"):
        with FS.kept_subsets(tmp_path / "subsets"):
            assert pdf_ps.get_glyphs_subset is not before[0]
            raise RuntimeError("boom")
    assert (pdf_ps.get_glyphs_subset, pdf_ps.font_as_file) == before


def test_figures_drawn_in_the_block_equal_those_drawn_outside(tmp_path, monkeypatch):
    """The library functions, drawn with an explicit folder twice (cut, then read back), give
    the bytes of a figure drawn without it: every figure kind and both faces."""
    monkeypatch.chdir(tmp_path)
    for name in T.FIGURE_NAMES:
        plain = tmp_path / "plain"
        plain.mkdir(exist_ok=True)
        T._make(name, plain)
        for run in ("cut", "read"):
            folder = tmp_path / run
            folder.mkdir(exist_ok=True)
            with FS.kept_subsets(tmp_path / "kept"):
                T._make(name, folder)
            for ext in ("pdf", "png"):
                got = (folder / f"{name}.{ext}").read_bytes()
                assert got == (plain / f"{name}.{ext}").read_bytes(), (name, run, ext)


def test_subset_key_names_every_input(tmp_path):
    font = tmp_path / "font.ttf"
    font.write_bytes(b"font bytes")
    key = FS.subset_key(str(font), [3, 1, 2], ("4.0", "3.0"))
    assert key == FS.subset_key(str(font), [1, 2, 3, 3], ("4.0", "3.0"))  # repeated glyphs
    others = {
        FS.subset_key(str(font), [1, 2], ("4.0", "3.0")),
        FS.subset_key(str(font), [1, 2, 3], ("4.1", "3.0")),
        FS.subset_key(str(font), [1, 2, 3], ("4.0", "3.1")),
    }
    font.write_bytes(b"other font bytes")
    others.add(FS.subset_key(str(font), [1, 2, 3], ("4.0", "3.0")))
    from matplotlib.font_manager import FontPath

    font.write_bytes(b"font bytes")
    others.add(FS.subset_key(FontPath(str(font), 1), [1, 2, 3], ("4.0", "3.0")))
    assert key not in others and len(others) == 5
    assert FS.subset_key(str(tmp_path / "missing.ttf"), [1], ("4.0", "3.0")) is None


def test_encode_decode_round_trip_and_rejects():
    mapping = {7: 1, 3: 0, 900: 2}
    kept = FS.encode(mapping, b"\x00\x01font\n\xff")
    assert FS.decode(kept) == (mapping, b"\x00\x01font\n\xff")
    for bad in (b"", kept[:-1], kept + b"x", b"x" + kept, FS.MAGIC + b"short"):
        with pytest.raises(ValueError):
            FS.decode(bad)


def test_a_warm_job_does_not_run_fonttools_subset(workflow_folder, job_inputs):
    """In a fresh process whose subsets are all kept, ``fontTools.subset`` is never executed
    (its import alone costs about 0.06 s)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "import test_figures as T; inputs = T._job_inputs(Path(sys.argv[2]))[0]; "
        "T._figures_job(inputs, [T.PSM_NN], Path(sys.argv[3])); "
        "m = sys.modules.get('fontTools.subset'); "
        "print(type(m).__name__, hasattr(m, '__dict__') and 'Subsetter' in m.__dict__)"
    )
    tests = str(Path(__file__).parent)
    args = [sys.executable, "-c", code, tests, str(workflow_folder / "in")]
    cold = subprocess.run([*args, "a"], capture_output=True, text=True, check=True).stdout
    warm = subprocess.run([*args, "b"], capture_output=True, text=True, check=True).stdout
    assert cold.split() == ["module", "True"]
    assert warm.split()[0] == "_LazyModule"


def test_module_import_is_light():
    code = (
        "import sys, nqp_resilience.outputs.font_subsets; "
        "print(sorted(m for m in ('matplotlib', 'fontTools', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert F.PDF_METADATA  # the figures module still imports without matplotlib


def test_prune_removes_the_subsets_used_longest_ago(tmp_path):
    import os

    folder = tmp_path / "kept"
    folder.mkdir()
    for i in range(5):  # a.bin used longest ago ... e.bin last
        path = folder / f"{'abcde'[i]}.bin"
        path.write_bytes(b"x" * 100)
        os.utime(path, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    (folder / ".a.bin.123.tmp").write_bytes(b"x" * 1000)  # a write in progress: not a subset
    (folder / "notes.txt").write_bytes(b"x" * 1000)
    assert FS.prune(folder, limit=250) == 3
    left = sorted(p.name for p in folder.iterdir())
    assert left == [".a.bin.123.tmp", "d.bin", "e.bin", "notes.txt"]
    assert FS.prune(folder, limit=250) == 0
    assert FS.prune(folder, limit=0) == 2
    assert FS.prune(tmp_path / "missing", limit=0) == 0


def test_a_kept_subset_read_back_is_marked_used_and_the_folder_stays_bounded(
    workflow_folder, job_inputs, reference, monkeypatch
):
    import os

    T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "a")
    kept = sorted(FS.FOLDER.iterdir())
    size = sum(p.stat().st_size for p in kept)
    old = 10**18  # 2001
    for path in kept:
        os.utime(path, ns=(old, old))
    stale = FS.FOLDER / f"{'0' * 64}.bin"
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, ns=(old - 10**9, old - 10**9))
    # one subset gone, so that the next job cuts (and keeps) it again and then prunes the folder
    # to the size of exactly the subsets it uses: the stale one goes, the ones it read stay
    kept[0].unlink()
    monkeypatch.setattr(FS, "MAX_BYTES", size)
    out = T._figures_job(job_inputs, [T.PSM_NN, T.PSM_KERNEL], workflow_folder / "b")
    assert _files(out) == reference
    assert not stale.exists()
    assert sorted(FS.FOLDER.iterdir()) == kept
    assert all(p.stat().st_mtime_ns > old for p in kept)
