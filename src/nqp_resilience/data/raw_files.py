"""The raw folder's layout: which file each source is read from, checked before any job runs."""

from __future__ import annotations

from pathlib import Path


RAW_FILES = {
    "patents": "cnrds/patents.csv",
    "innovation": "cnrds/innovation.csv",
    "national": "ceic/national.csv",
    "relief": "static/relief.csv",
    "telephones_1984": "static/telephones_1984.csv",
}


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
        raise DataError(found[0], f"two extracts for data year {year}: {found[0]} and {found[1]}",
                        expected="one file per data year, .csv or .xlsx",
                        hint="delete or move the one you do not want to use; the workflow does not guess")
    if found:
        return str(found[0])
    xls = base.with_suffix(".xls")
    raise DataError(base.with_suffix(".csv"), f"no yearbook extract for data year {year}",
                    expected=f"{base.name}.csv or {base.name}.xlsx in {base.parent}",
                    hint=f"{xls} is the old binary Excel format: save it as .xlsx or CSV UTF-8" if xls.exists()
                    else "add the extract of that year, or narrow `years` in config.yaml to the years you have")


def raw_source_path(raw_dir, source) -> str:
    """The raw file of a non-yearbook source (:data:`RAW_FILES`); a missing file is a
    :class:`~nqp_resilience.errors.DataError` naming it."""
    from nqp_resilience.errors import DataError

    path = Path(raw_dir) / RAW_FILES[source]
    if not path.exists():
        others = sorted(p.name for p in path.parent.glob(f"{path.stem}.*")) if path.parent.is_dir() else []
        raise DataError(path, f"the raw file of source '{source}' is missing",
                        expected=f"{RAW_FILES[source]} under raw_dir ({raw_dir})",
                        hint=(f"found {', '.join(others)} instead: save it as CSV under that name"
                              if others else "restore the file (the workflow needs it for every run)"))
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
    expected = [folder / f"{prov}_{year}.txt" for prov in provinces for year in range(years[0], years[1] + 1)]
    missing = [p for p in expected if not p.exists()]
    if missing:
        shown = ", ".join(p.name for p in missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise DataError(missing[0], f"{len(missing)} government work report(s) missing: {shown}",
                        row=f"province {missing[0].stem[:6]}, year {missing[0].stem[7:]}",
                        expected=f"one UTF-8 file {{PROVINCE_CODE}}_{{YEAR}}.txt per province and year "
                        f"{years[0]}–{years[1]} in {folder}",
                        hint="add the report (municipalities use their own report; 000000 is the central "
                        "government's); Nqp1 cannot be computed for a province-year without it")
    extra = set(folder.glob("*.txt")) - set(expected)
    return [str(p) for p in sorted(set(expected) | extra)]


def check_raw_files(raw_dir, years, attributes, include_central: bool = False) -> None:
    """Check that every raw file of the study period is present, once per workflow invocation.

    Snakemake ignores an error in the input function (or a missing input) of a job whose output
    already exists when that output is the input of another job, and keeps the old result: a raw
    file deleted, or a second extract added, after a run would pass unnoticed. Checking the
    folder when the workflow is parsed makes each of these a :class:`DataError` naming the file.
    """
    for year in range(years[0], years[1] + 1):
        yearbook_path(raw_dir, year)
    for source in RAW_FILES:
        raw_source_path(raw_dir, source)
    report_paths(raw_dir, attributes, years, include_central)
