"""Glue between Snakemake jobs and the package: one function per rule, plus error handling.

Each ``scripts/*.py`` file calls :func:`run` with one of the ``*_job`` functions below. A user
error (:class:`~nqp_resilience.errors.ProjectError`) is written to the job's log and to stderr
as a readable message and ends the job with exit status 1, without a traceback from deep
inside pandas; any other exception is a bug and is written with its traceback to the log.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from nqp_resilience.errors import ProjectError

log = logging.getLogger("nqp_resilience")

#: Raw files of the non-yearbook sources, relative to raw_dir (SPEC §3).
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
    from nqp_resilience.cities import read_attributes
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


def run(job, smk) -> None:
    """Run ``job(smk)`` with logging routed to the rule's log file and to stderr.

    Levels: the package's own loggers (``nqp_resilience.*``) from INFO, every other logger from
    WARNING (matplotlib's PDF backend would otherwise add one fontTools INFO line per font it
    subsets). A user error (:class:`~nqp_resilience.errors.ProjectError`) is logged as its
    message and hint only; any other exception is a bug and is logged with its full traceback,
    so that it reaches the job's log and not only the console. Either ends the job with exit
    status 1.
    """
    handlers = [logging.StreamHandler(sys.stderr)]
    if smk is not None and len(smk.log):
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    log.setLevel(logging.INFO)
    try:
        job(smk)
    except ProjectError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        _exit(handlers)
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback in the job's log
        log.critical("unexpected %s (a bug in the workflow, not a problem of the data or the configuration); "
                     "traceback:", type(exc).__name__, exc_info=True)
        _exit(handlers)


@contextlib.contextmanager
def stop_on_user_error():
    """Checks run while Snakemake reads the workflow (config, raw files, specs): a user error
    prints its message and hint and ends Snakemake with exit status 1, without the traceback
    Snakemake would otherwise append; a bug keeps its traceback."""
    try:
        yield
    except ProjectError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _exit(handlers) -> None:
    for h in handlers:
        h.flush()
    sys.exit(1)


def _years(smk) -> tuple[int, int]:
    return int(smk.params.years[0]), int(smk.params.years[1])


def ingest_yearbook_job(smk) -> None:
    """Rule ``ingest_yearbook``: one yearbook year -> results/interim/yearbook_{year}.parquet."""
    from nqp_resilience.cities import CityResolver
    from nqp_resilience.codebook import Codebook
    from nqp_resilience.ingest import ingest_table
    from nqp_resilience.io import write_parquet

    source = Codebook(smk.input.codebook)["yearbook"]
    resolver = CityResolver(smk.input.attributes, smk.input.aliases)
    df = ingest_table(smk.input.raw, source, resolver, _years(smk), year=int(smk.wildcards.year))
    log.info("%s: %d cities, %d variables", smk.input.raw, len(df), len(set(df.columns) & set(source.variables)))
    write_parquet(df, smk.output.table)


def ingest_source_job(smk) -> None:
    """Rule ``ingest_source``: one CNRDS/CEIC/static file -> results/interim/{source}.parquet."""
    from nqp_resilience.cities import CityResolver
    from nqp_resilience.codebook import Codebook
    from nqp_resilience.ingest import ingest_table
    from nqp_resilience.io import write_parquet

    source = Codebook(smk.input.codebook)[smk.wildcards.source]
    resolver = CityResolver(smk.input.attributes, smk.input.aliases) if source.grain != "year" else None
    y0, y1 = _years(smk)
    df = ingest_table(smk.input.raw, source, resolver, (y0 - source.years_before, y1))
    log.info("%s: %d rows, %d variables", smk.input.raw, len(df), len(source.variables))
    write_parquet(df, smk.output.table)


def ingest_reports_job(smk) -> None:
    """Rule ``ingest_reports``: the government work reports -> results/interim/reports.parquet."""
    from nqp_resilience.cities import read_attributes
    from nqp_resilience.ingest import ingest_reports
    from nqp_resilience.io import write_parquet

    provinces = {r["province_code"] for r in read_attributes(smk.input.attributes)}
    df = ingest_reports(list(smk.input.reports), provinces, _years(smk))
    log.info("%d reports ingested", len(df))
    write_parquet(df, smk.output.table)


def plausibility_job(smk) -> None:
    """Rule ``plausibility``: interim tables + corrections -> checked tables and the audit.

    The audit (``results/audit/plausibility.md``/``.csv``) is written in both modes; with
    ``action: stop`` a finding then ends the job with every finding in the message, so the panel
    is not built.
    """
    from pathlib import Path

    from nqp_resilience.cities import read_attributes
    from nqp_resilience.codebook import Codebook
    from nqp_resilience.io import write_csv, write_parquet, write_text
    from nqp_resilience.plausibility import (PlausibilityError, Thresholds, audit_markdown, check_tables,
                                             findings_frame, load_inputs, read_corrections)

    codebook = Codebook(smk.input.codebook)
    interim = [*smk.input.yearbook, *smk.input.sources]
    raw = [*smk.input.raw_yearbook, *smk.input.raw_sources]
    tables = load_inputs(interim, raw, codebook)
    names = {r["city_code"]: r["city_name"] for r in read_attributes(smk.input.attributes)}
    result = check_tables(tables, codebook, Thresholds.from_config(dict(smk.params.thresholds)),
                          read_corrections(smk.input.corrections), names, corrections_path=smk.input.corrections)
    action = smk.params.action
    log.info("plausibility: %d cells checked, %d findings, %d confirmed, %d corrections applied (action %s)",
             result.cells_checked, len(result.findings), len(result.confirmed), len(result.corrections), action)
    write_text(smk.output.report, audit_markdown(result, action))
    write_csv(findings_frame(result.findings), smk.output.table)
    if result.findings and action == "stop":
        raise PlausibilityError(result, smk.input.corrections, smk.output.report)
    for f in result.findings:
        log.warning("%s: %s", f.where(), f.cause)
    out = {Path(p).stem: p for p in [*smk.output.yearbook, *smk.output.sources]}
    for name, df in result.tables.items():
        write_parquet(df, out[name])


def build_panel_job(smk) -> None:
    """Rule ``build_panel``: interim tables -> panel, imputation audit and sample log."""
    import pandas as pd

    from nqp_resilience.cities import attributes_frame
    from nqp_resilience.clean import SampleOptions, build_panel, check_panel, sample_report
    from nqp_resilience.codebook import Codebook
    from nqp_resilience.io import write_csv, write_parquet, write_text

    p = smk.params
    options = SampleOptions(years=_years(smk), drop_changed_2011=bool(p.sample["drop_changed_2011"]),
                            changed_2011_types=tuple(p.sample["changed_2011_types"]),
                            drop_partial_period=bool(p.sample["drop_partial_period"]),
                            max_missing_share=float(p.sample["max_missing_share"]),
                            required_variables=tuple(p.sample["required_variables"]), edge=p.edge)
    codebook = Codebook(smk.input.codebook)
    order = list(codebook.variables("city_year"))
    city_year = [pd.read_parquet(f) for f in [*smk.input.yearbook, *smk.input.city_year]]
    static = [pd.read_parquet(f) for f in smk.input.static]
    national = pd.read_parquet(smk.input.national)
    panel, audit, sample = build_panel(city_year, static, national, attributes_frame(smk.input.attributes),
                                       options, order)
    required = list(options.required_variables) or [v for v in order if v in panel.columns]
    check_panel(panel, required, options.edge, path=smk.output.panel)
    log.info("panel: %d cities x %d years; %d imputed cells; %d cities dropped",
             panel["city_code"].nunique(), panel["year"].nunique(), len(audit), int((~sample["kept"]).sum()))
    write_parquet(audit, smk.output.audit)
    write_csv(sample, smk.output.sample_table)
    write_text(smk.output.sample_log, sample_report(sample, audit, panel, options))
    write_parquet(panel, smk.output.panel)


def nqp_index_job(smk) -> None:
    """Rule ``nqp_index``: panel + indicator system -> NQP index and entropy weights."""
    import pandas as pd

    from nqp_resilience.entropy import nqp_index
    from nqp_resilience.indicators import load_indicator_system
    from nqp_resilience.io import write_csv, write_parquet

    e = smk.params.entropy
    system = load_indicator_system(smk.input.indicators, e["directions"])
    panel = pd.read_parquet(smk.input.panel)
    index, weights = nqp_index(panel, system, scope=e["scope"], aggregation=e["aggregation"],
                               variant=e["variant"], eps=float(e["eps"]))
    log.info("Nqp: mean %.4f, sd %.4f over %d city-years (%s, %s)", index["nqp"].mean(), index["nqp"].std(),
             len(index), e["scope"], e["aggregation"])
    write_csv(weights, smk.output.weights, float_format="%.10f")
    write_parquet(index, smk.output.index)


def nqp_text_job(smk) -> None:
    """Rule ``nqp_text``: government work reports -> Nqp1 per province and year."""
    import pandas as pd

    from nqp_resilience.io import write_parquet
    from nqp_resilience.simulate import read_keywords
    from nqp_resilience.text import nqp1_table

    panel = pd.read_parquet(smk.input.panel, columns=["province_code", "year"])
    reports = pd.read_parquet(smk.input.reports)
    table = nqp1_table(reports, read_keywords(smk.input.keywords), panel["province_code"].unique(),
                       sorted(panel["year"].unique()), include_central=bool(smk.params.include_central))
    log.info("Nqp1: %d province-years, mean %.5f keywords per character", len(table), table["Nqp1"].mean())
    write_parquet(table, smk.output.table)


def derived_variables_job(smk) -> None:
    """Rule ``derived_variables``: outcomes, controls, mechanisms, instruments, heterogeneity."""
    import pandas as pd

    from nqp_resilience.analysis import derived_variables
    from nqp_resilience.cities import attributes_frame
    from nqp_resilience.io import write_parquet

    out = derived_variables(pd.read_parquet(smk.input.panel), pd.read_parquet(smk.input.national),
                            attributes_frame(smk.input.attributes), dict(smk.params.options))
    write_parquet(out, smk.output.table)


def analysis_panel_job(smk) -> None:
    """Rule ``analysis_panel``: join panel ids, Nqp, Nqp1 and derived variables; write the codebook."""
    import pandas as pd

    from nqp_resilience.analysis import analysis_panel, codebook_markdown, definitions
    from nqp_resilience.io import write_parquet, write_text

    out = analysis_panel(pd.read_parquet(smk.input.panel), pd.read_parquet(smk.input.index),
                         pd.read_parquet(smk.input.nqp1), pd.read_parquet(smk.input.derived))
    write_text(smk.output.codebook, codebook_markdown(out, definitions(dict(smk.params.options))))
    write_parquet(out, smk.output.panel)


def desc_stats_job(smk) -> None:
    """Rule ``desc_stats``: Table 2 content as CSV."""
    import pandas as pd

    from nqp_resilience.analysis import descriptive_statistics, definitions
    from nqp_resilience.io import write_csv

    table = descriptive_statistics(pd.read_parquet(smk.input.panel), defs=definitions(dict(smk.params.options)))
    write_csv(table, smk.output.table, float_format="%.6f")


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def software_versions(packages=("numpy", "scipy", "pyarrow", "nqp-resilience")) -> dict:
    """Versions of the packages an estimate depends on (cheap: package metadata only)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def estimate_spec_job(smk) -> None:
    """Rules ``describe``, ``ols_fe``, ``iv_fe``, ``psm_fe``: one spec -> results/estimates/{spec}.json.

    Reads only the columns the spec needs, without pandas, so the job costs little more than
    the interpreter start (see benchmarks/spec_jobs.py).
    """
    import json

    from nqp_resilience.columns import read_columns
    from nqp_resilience.io import write_text
    from nqp_resilience.specs import estimate, spec_columns

    spec = dict(smk.params.spec)
    controls = list(smk.params.control_variables)
    data = read_columns(smk.input.panel, spec_columns(spec, controls))
    record = estimate(spec, data, controls, singletons=smk.params.singletons)
    record["software"] = software_versions()
    record["inputs"] = {"analysis_panel": _sha256(smk.input.panel)}
    write_text(smk.output.estimate, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    log.info("%s: coef %s, se %s, N %s", spec["id"], record.get("coef"), record.get("se"), record.get("nobs"))


def spec_samples_job(smk) -> None:
    """Rule ``spec_samples``: the observations every spec uses and loses, and the cities absent
    from a static file -> results/audit/spec_samples.{md,csv}."""
    import pandas as pd

    from nqp_resilience.codebook import Codebook
    from nqp_resilience.coverage import spec_samples, spec_samples_markdown
    from nqp_resilience.io import write_csv, write_text

    codebook = Codebook(smk.input.codebook)
    static_files = {var: path for source, path in dict(smk.params.static_files).items()
                    for var in codebook[source].variables}
    specs = {spec["id"]: dict(spec) for spec in smk.params.specs}
    summary, lost, absent = spec_samples(pd.read_parquet(smk.input.analysis), pd.read_parquet(smk.input.panel),
                                         specs, list(smk.params.control_variables), static_files)
    for (code, name, path), _ in absent.groupby(["city_code", "city_name", "static_file"], sort=True):
        gone = lost[(lost["city_code"] == code) & (lost["city_rows_lost"] == lost["city_rows"])]
        hit = list(dict.fromkeys(gone["spec"]))
        log.warning("city %s %s is absent from %s: specs %s run without it (see %s)", code, name, path,
                    ", ".join(hit) or "none", smk.output.report)
    write_csv(lost, smk.output.table)
    write_text(smk.output.report, spec_samples_markdown(summary, lost, absent))


def replication_check_job(smk) -> None:
    """Rule ``replication_check``: published numbers vs ours -> results/tables/replication_check.md."""
    import json
    from pathlib import Path

    from nqp_resilience.io import read_yaml, write_text
    from nqp_resilience.replication import replication_report

    published = read_yaml(smk.input.published)
    estimates = {}
    for path in smk.input.estimates:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        estimates[record["spec"]] = record
    write_text(smk.output.report, replication_report(published, estimates))


def tables_pdf_job(smk) -> None:
    """Rule ``tables_pdf``: compile tables.tex (pdflatex, or xelatex for Chinese labels) and render
    Table 3 alone to a PNG (for the README). Fails with the TeX log's first error."""
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    from nqp_resilience.errors import ProjectError
    from nqp_resilience.io import write_bytes
    from nqp_resilience.tables import render_document

    engine = smk.params.engine
    env = dict(os.environ, SOURCE_DATE_EPOCH="946684800", FORCE_SOURCE_DATE="1")
    doc = Path(smk.input.document).resolve()

    def compile_tex(tex: Path, outdir: Path) -> Path:
        for _ in range(2):  # twice, for references
            proc = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error",
                                   f"-output-directory={outdir}", tex.name], cwd=tex.parent, env=env,
                                  capture_output=True, text=True, errors="replace")
            if proc.returncode != 0:
                first = next((l for l in proc.stdout.splitlines() if l.startswith("!")), proc.stdout[-500:])
                raise ProjectError(f"{engine} failed on {tex}: {first}")
        log.info("%s: compiled %s", engine, tex.name)
        return outdir / (tex.stem + ".pdf")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_bytes(smk.output.pdf, compile_tex(doc, tmp).read_bytes())
        table3 = [t for t in smk.input.tables if Path(t).name == "table3.tex"]
        single = doc.parent / "_table3_only.tex"
        language = "zh" if engine == "xelatex" else "en"
        single.write_text(render_document([str(Path(t).resolve()) for t in table3], language,
                                          relative_to=doc.parent).replace(
            "\\begin{document}", "\\pagestyle{empty}\n\\begin{document}\n\\setcounter{table}{2}"), encoding="utf-8")
        try:
            pdf = compile_tex(single, tmp)
        finally:
            single.unlink(missing_ok=True)
        subprocess.run(["pdftoppm", "-png", "-r", "130", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                        str(tmp / "page")], check=True)
        write_bytes(smk.output.table3_png, _crop_png(tmp / "page.png"))


def _crop_png(path) -> bytes:
    """Crop a rendered page to its content with a small white margin."""
    import io

    import numpy as np
    from PIL import Image

    img = Image.open(path).convert("L")
    a = np.asarray(img)
    rows, cols = np.where(a < 250)
    if rows.size:
        m = 12
        box = (max(cols.min() - m, 0), max(rows.min() - m, 0), min(cols.max() + m, a.shape[1]),
               min(rows.max() + m, a.shape[0]))
        img = img.crop(box)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
