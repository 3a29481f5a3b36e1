"""Snakemake jobs of the data stage (rules in ``rules/data.smk``): ingest, plausibility, panel."""

from __future__ import annotations

import logging

from nqp_resilience.runner import _years

log = logging.getLogger("nqp_resilience")


def ingest_yearbook_job(smk) -> None:
    """Rule ``ingest_yearbook``: one yearbook year -> results/interim/yearbook_{year}.parquet."""
    from nqp_resilience.data.cities import CityResolver
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.ingest import SOURCE_LINE, ingest_columns
    from nqp_resilience.data.io import write_columns

    source = Codebook(smk.input.codebook)["yearbook"]
    resolver = CityResolver(smk.input.attributes, smk.input.aliases)
    table = ingest_columns(
        smk.input.raw, source, resolver, _years(smk), year=int(smk.wildcards.year)
    )
    log.info(
        "%s: %d cities, %d variables",
        smk.input.raw,
        len(table[SOURCE_LINE][1]),
        len(set(table) & set(source.variables)),
    )
    write_columns(table, smk.output.table)


def ingest_source_job(smk) -> None:
    """Rule ``ingest_source``: one CNRDS/CEIC/static file -> results/interim/{source}.parquet."""
    from nqp_resilience.data.cities import CityResolver
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.ingest import SOURCE_LINE, ingest_columns
    from nqp_resilience.data.io import write_columns

    source = Codebook(smk.input.codebook)[smk.wildcards.source]
    resolver = (
        CityResolver(smk.input.attributes, smk.input.aliases) if source.grain != "year" else None
    )
    y0, y1 = _years(smk)
    table = ingest_columns(smk.input.raw, source, resolver, (y0 - source.years_before, y1))
    n = len(table[SOURCE_LINE][1])
    log.info("%s: %d rows, %d variables", smk.input.raw, n, len(source.variables))
    write_columns(table, smk.output.table)


def ingest_reports_job(smk) -> None:
    """Rule ``ingest_reports``: the government work reports -> results/interim/reports.parquet."""
    from nqp_resilience.data.cities import read_attributes
    from nqp_resilience.data.ingest import report_columns
    from nqp_resilience.data.io import write_columns

    provinces = {r["province_code"] for r in read_attributes(smk.input.attributes)}
    table = report_columns(list(smk.input.reports), provinces, _years(smk))
    log.info("%d reports ingested", len(table["year"][1]))
    write_columns(table, smk.output.table)


def plausibility_job(smk) -> None:
    """Rule ``plausibility``: interim tables + corrections -> checked tables and the audit.

    The audit (``results/audit/plausibility.md``/``.csv``) is written in both modes; with
    ``action: stop`` a finding then ends the job with every finding in the message, so the panel
    is not built.
    """
    from pathlib import Path

    from nqp_resilience.data.cities import read_attributes
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.io import write_csv, write_parquet, write_text
    from nqp_resilience.data.plausibility import (
        PlausibilityError,
        Thresholds,
        audit_markdown,
        check_tables,
        findings_frame,
        load_inputs,
        read_corrections,
    )

    codebook = Codebook(smk.input.codebook)
    interim = [*smk.input.yearbook, *smk.input.sources]
    raw = [*smk.input.raw_yearbook, *smk.input.raw_sources]
    tables = load_inputs(interim, raw, codebook)
    names = {r["city_code"]: r["city_name"] for r in read_attributes(smk.input.attributes)}
    result = check_tables(
        tables,
        codebook,
        Thresholds.from_config(dict(smk.params.thresholds)),
        read_corrections(smk.input.corrections),
        names,
        corrections_path=smk.input.corrections,
    )
    action = smk.params.action
    log.info(
        "plausibility: %d cells checked, %d findings, %d confirmed, "
        "%d corrections applied (action %s)",
        result.cells_checked,
        len(result.findings),
        len(result.confirmed),
        len(result.corrections),
        action,
    )
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

    from nqp_resilience.data.cities import attributes_frame
    from nqp_resilience.data.clean import SampleOptions, build_panel, check_panel, sample_report
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.io import write_csv, write_parquet, write_text

    p = smk.params
    options = SampleOptions(
        years=_years(smk),
        drop_changed_2011=bool(p.sample["drop_changed_2011"]),
        changed_2011_types=tuple(p.sample["changed_2011_types"]),
        drop_partial_period=bool(p.sample["drop_partial_period"]),
        max_missing_share=float(p.sample["max_missing_share"]),
        required_variables=tuple(p.sample["required_variables"]),
        edge=p.edge,
    )
    codebook = Codebook(smk.input.codebook)
    order = list(codebook.variables("city_year"))
    city_year = [pd.read_parquet(f) for f in [*smk.input.yearbook, *smk.input.city_year]]
    static = [pd.read_parquet(f) for f in smk.input.static]
    national = pd.read_parquet(smk.input.national)
    panel, audit, sample = build_panel(
        city_year, static, national, attributes_frame(smk.input.attributes), options, order
    )
    required = list(options.required_variables) or [v for v in order if v in panel.columns]
    check_panel(panel, required, options.edge, path=smk.output.panel)
    log.info(
        "panel: %d cities x %d years; %d imputed cells; %d cities dropped",
        panel["city_code"].nunique(),
        panel["year"].nunique(),
        len(audit),
        int((~sample["kept"]).sum()),
    )
    write_parquet(audit, smk.output.audit)
    write_csv(sample, smk.output.sample_table)
    write_text(smk.output.sample_log, sample_report(sample, audit, panel, options))
    write_parquet(panel, smk.output.panel)
