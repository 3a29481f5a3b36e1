"""Snakemake jobs of the indices stage (rules in ``rules/indices.smk``)."""

from __future__ import annotations

import logging

log = logging.getLogger("nqp_resilience")


def nqp_index_job(smk) -> None:
    """Rule ``nqp_index``: panel + indicator system -> NQP index and entropy weights."""
    import pandas as pd

    from nqp_resilience.data.io import write_csv, write_parquet
    from nqp_resilience.indices.entropy import nqp_index
    from nqp_resilience.indices.indicators import load_indicator_system

    e = smk.params.entropy
    system = load_indicator_system(smk.input.indicators, e["directions"])
    panel = pd.read_parquet(smk.input.panel)
    index, weights = nqp_index(
        panel,
        system,
        scope=e["scope"],
        aggregation=e["aggregation"],
        variant=e["variant"],
        eps=float(e["eps"]),
    )
    log.info(
        "Nqp: mean %.4f, sd %.4f over %d city-years (%s, %s)",
        index["nqp"].mean(),
        index["nqp"].std(),
        len(index),
        e["scope"],
        e["aggregation"],
    )
    write_csv(weights, smk.output.weights, float_format="%.10f")
    write_parquet(index, smk.output.index)


def jieba_cache_job(smk) -> None:
    """Rule ``jieba_cache``: jieba's base dictionary, built once into a cache file."""
    from nqp_resilience.indices.jieba_dict import build_cache

    info = build_cache(smk.output.cache)
    log.info(
        "jieba %s dictionary: %d entries, total frequency %d (dict.txt %d bytes, sha256 %s)",
        info["jieba_version"],
        info["entries"],
        info["total"],
        info["size"],
        info["sha256"],
    )


def nqp_text_job(smk) -> None:
    """Rule ``nqp_text``: government work reports -> Nqp1 per province and year.

    Reads and writes Parquet through pyarrow only (pandas would take longer to import than
    the counting takes); the table is the same bytes as ``write_parquet(nqp1_table(...))``.
    The base dictionary comes from input ``jieba_cache`` where given and usable, else from
    jieba (a warning says why)."""
    from nqp_resilience.data.parquet import read_columns
    from nqp_resilience.indices.jieba_dict import CacheError, jieba_base_dictionary, open_dictionary
    from nqp_resilience.indices.nqp_text import nqp1_rows, read_keywords, read_reports, write_nqp1

    panel = read_columns(smk.input.panel, ["province_code", "year"])
    provinces = {str(p) for p in panel["province_code"]}
    years = sorted({int(y) for y in panel["year"]})
    reports = read_reports(smk.input.reports)
    keywords = read_keywords(smk.input.keywords)
    include_central = bool(smk.params.include_central)
    dictionary = open_dictionary(getattr(smk.input, "jieba_cache", None), log)
    try:
        rows = nqp1_rows(reports, keywords, provinces, years, include_central, dictionary)
    except CacheError as exc:  # a block of the cache found damaged while counting
        log.warning("%s\n  the dictionary is built from jieba instead (slower)", exc)
        rows = nqp1_rows(
            reports, keywords, provinces, years, include_central, jieba_base_dictionary()
        )
    log.info(
        "Nqp1: %d province-years, mean %.5f keywords per character",
        len(rows),
        sum(r["Nqp1"] for r in rows) / max(len(rows), 1),
    )
    write_nqp1(rows, smk.output.table)


def derived_variables_job(smk) -> None:
    """Rule ``derived_variables``: outcomes, controls, mechanisms, instruments, heterogeneity,
    and the imputed-outcome flags from the panel build's imputation audit (input ``audit``)."""
    import pandas as pd

    from nqp_resilience.data.cities import attributes_frame
    from nqp_resilience.data.io import write_parquet
    from nqp_resilience.indices.analysis import derived_variables

    out = derived_variables(
        pd.read_parquet(smk.input.panel),
        pd.read_parquet(smk.input.national),
        attributes_frame(smk.input.attributes),
        pd.read_parquet(smk.input.audit),
        dict(smk.params.options),
    )
    write_parquet(out, smk.output.table)


def analysis_panel_job(smk) -> None:
    """Rule ``analysis_panel``: join panel ids, Nqp, Nqp1 and derived variables; write the
    codebook."""
    import pandas as pd

    from nqp_resilience.data.io import write_parquet, write_text
    from nqp_resilience.indices.analysis import analysis_panel, codebook_markdown, definitions

    out = analysis_panel(
        pd.read_parquet(smk.input.panel),
        pd.read_parquet(smk.input.index),
        pd.read_parquet(smk.input.nqp1),
        pd.read_parquet(smk.input.derived),
    )
    write_text(smk.output.codebook, codebook_markdown(out, definitions(dict(smk.params.options))))
    write_parquet(out, smk.output.panel)


def desc_stats_job(smk) -> None:
    """Rule ``desc_stats``: Table 2 content as CSV."""
    import pandas as pd

    from nqp_resilience.data.io import write_csv
    from nqp_resilience.indices.analysis import definitions, descriptive_statistics

    table = descriptive_statistics(
        pd.read_parquet(smk.input.panel), defs=definitions(dict(smk.params.options))
    )
    write_csv(table, smk.output.table, float_format="%.6f")
