"""The raw folder's layout: which file each source is read from, checked before any job runs.

The file of every source but the yearbook is its ``file`` in the codebook
(``resources/codebook.yaml``), read once per process by :func:`raw_file_table`; the workflow
derives its ingest jobs and the inputs of the plausibility and panel jobs from it, so a new
source is one codebook entry (``rules/common.smk`` keeps it as ``RAW_FILES``). Without a
codebook path, the codebook of the current folder (the workflow folder) is read, else that of
the project the package belongs to.
"""

from __future__ import annotations

from pathlib import Path

#: The codebook of the workflow, relative to the workflow folder.
CODEBOOK = "resources/codebook.yaml"

_TABLES: dict[tuple[str, int], tuple[dict[str, str], dict[str, list[str]]]] = {}


def default_codebook() -> Path:
    """``resources/codebook.yaml`` of the current folder if there is one, else of the project
    the package belongs to (the checkout it is installed from)."""
    here = Path.cwd() / CODEBOOK
    return here if here.is_file() else Path(__file__).resolve().parents[3] / CODEBOOK


def _read(codebook) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Files and grains of a codebook, read once per file version (path and mtime)."""
    from nqp_resilience.data.codebook import Codebook

    path = Path(codebook if codebook is not None else default_codebook())
    key = (str(path.resolve()), path.stat().st_mtime_ns if path.exists() else -1)
    if key not in _TABLES:
        book = Codebook(path)
        _TABLES[key] = (book.files(), book.sources_by_grain())
    return _TABLES[key]


def raw_file_table(codebook=None) -> dict[str, str]:
    """``{source: raw file under raw_dir}`` of every source with a ``file`` in ``codebook``
    (all but the yearbook), in codebook order. A copy: changing it changes nothing."""
    return dict(_read(codebook)[0])


def raw_sources_by_grain(codebook=None) -> dict[str, list[str]]:
    """The sources of :func:`raw_file_table` by grain: ``city_year`` (joined to the yearbook
    panel), ``city`` (time-invariant, e.g. the instruments' base) and ``year`` (national series)."""
    return {grain: list(names) for grain, names in _read(codebook)[1].items()}


def yearbook_path(raw_dir, year) -> str:
    """The yearbook extract of ``year``: ``yearbook/city_yearbook_{year}.csv`` or ``.xlsx``.

    Raises :class:`~nqp_resilience.errors.DataError` if both exist (one would be ignored
    silently), or if neither does (a file deleted after a run must stop the run, not leave the
    earlier results in place); an old binary ``.xls`` is named with a hint.
    """
    from nqp_resilience.errors import DataError

    base = Path(raw_dir) / "yearbook" / f"city_yearbook_{year}"
    found = [base.with_suffix(ext) for ext in (".csv", ".xlsx") if base.with_suffix(ext).exists()]
    if len(found) > 1:
        raise DataError(
            found[0],
            f"two extracts for data year {year}: {found[0]} and {found[1]}",
            expected="one file per data year, .csv or .xlsx",
            hint="delete or move the one you do not want to use; the workflow does not guess",
        )
    if found:
        return str(found[0])
    xls = base.with_suffix(".xls")
    raise DataError(
        base.with_suffix(".csv"),
        f"no yearbook extract for data year {year}",
        expected=f"{base.name}.csv or {base.name}.xlsx in {base.parent}",
        hint=f"{xls} is the old binary Excel format: save it as .xlsx or CSV UTF-8"
        if xls.exists()
        else "add the extract of that year, or narrow `years` in config.yaml to the years you have",
    )


def raw_source_path(raw_dir, source, codebook=None) -> str:
    """The raw file of a non-yearbook source (its ``file`` in ``codebook``, by default
    :func:`default_codebook`); a missing file is a :class:`~nqp_resilience.errors.DataError`
    naming it."""
    from nqp_resilience.errors import DataError

    files = raw_file_table(codebook)
    path = Path(raw_dir) / files[source]
    if not path.exists():
        others = (
            sorted(p.name for p in path.parent.glob(f"{path.stem}.*"))
            if path.parent.is_dir()
            else []
        )
        raise DataError(
            path,
            f"the raw file of source '{source}' is missing",
            expected=f"{files[source]} under raw_dir ({raw_dir})",
            hint=(
                f"found {', '.join(others)} instead: save it as CSV under that name"
                if others
                else "restore the file (the workflow needs it for every run)"
            ),
        )
    return str(path)


def report_paths(raw_dir, attributes, years, include_central: bool = False) -> list[str]:
    """The government work reports: one per province of the attribute table and year of the
    study period (and the central government's, ``000000``, if ``include_central``), plus any
    other ``*.txt`` in ``reports/`` (so that a change to one reruns the ingest).

    A missing report is a :class:`~nqp_resilience.errors.DataError` naming every missing file.
    Listing the expected files (not a glob) makes a deleted report an error instead of a run on
    the remaining ones.
    """
    from nqp_resilience.data.cities import read_attributes
    from nqp_resilience.errors import DataError

    folder = Path(raw_dir) / "reports"
    provinces = sorted({r["province_code"] for r in read_attributes(attributes)})
    provinces += ["000000"] if include_central else []
    expected = [
        folder / f"{prov}_{year}.txt"
        for prov in provinces
        for year in range(years[0], years[1] + 1)
    ]
    missing = [p for p in expected if not p.exists()]
    if missing:
        shown = ", ".join(p.name for p in missing[:8]) + (
            f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise DataError(
            missing[0],
            f"{len(missing)} government work report(s) missing: {shown}",
            row=f"province {missing[0].stem[:6]}, year {missing[0].stem[7:]}",
            expected=f"one UTF-8 file {{PROVINCE_CODE}}_{{YEAR}}.txt per province and year "
            f"{years[0]}–{years[1]} in {folder}",
            hint="add the report (municipalities use their own report; 000000 is the central "
            "government's); Nqp1 cannot be computed for a province-year without it",
        )
    extra = set(folder.glob("*.txt")) - set(expected)
    return [str(p) for p in sorted(set(expected) | extra)]


def check_raw_files(
    raw_dir, years, attributes, include_central: bool = False, codebook=None
) -> None:
    """Check that every raw file of the study period is present, once per workflow invocation.

    Snakemake ignores an error in the input function (or a missing input) of a job whose output
    already exists when that output is the input of another job, and keeps the old result: a raw
    file deleted, or a second extract added, after a run would pass unnoticed. Checking the
    folder when the workflow is parsed makes each of these a :class:`DataError` naming the file.
    """
    for year in range(years[0], years[1] + 1):
        yearbook_path(raw_dir, year)
    for source in raw_file_table(codebook):
        raw_source_path(raw_dir, source, codebook)
    report_paths(raw_dir, attributes, years, include_central)
