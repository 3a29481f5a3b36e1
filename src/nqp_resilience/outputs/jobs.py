"""Snakemake jobs of the outputs stage (rules in ``rules/outputs.smk``): tables, the compiled
document, figures and the replication check."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("nqp_resilience")


def replication_check_job(smk) -> None:
    """Rule ``replication_check``: published numbers vs ours ->
    results/tables/replication_check.md."""
    from nqp_resilience.data.io import read_yaml, write_text
    from nqp_resilience.estimation.record import read_estimates
    from nqp_resilience.outputs.replication import replication_report

    published = read_yaml(smk.input.published)
    write_text(
        smk.output.report, replication_report(published, read_estimates(smk.input.estimates))
    )


def tables_pdf_job(smk) -> None:
    """Rule ``tables_pdf``: compile tables.tex (pdflatex, or xelatex for Chinese labels) and render
    Table 3 alone to a PNG (for the README). Fails with the TeX log's first error."""
    import os
    import subprocess
    import tempfile
    from pathlib import Path

    from nqp_resilience.data.io import write_bytes
    from nqp_resilience.errors import ProjectError
    from nqp_resilience.outputs.tables import render_document

    engine = smk.params.engine
    env = dict(os.environ, SOURCE_DATE_EPOCH="946684800", FORCE_SOURCE_DATE="1")
    doc = Path(smk.input.document).resolve()

    def compile_tex(tex: Path, outdir: Path) -> Path:
        for _ in range(2):  # twice, for references
            proc = subprocess.run(
                [
                    engine,
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    f"-output-directory={outdir}",
                    tex.name,
                ],
                cwd=tex.parent,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
            )
            if proc.returncode != 0:
                first = next(
                    (line for line in proc.stdout.splitlines() if line.startswith("!")),
                    proc.stdout[-500:],
                )
                raise ProjectError(f"{engine} failed on {tex}: {first}")
        log.info("%s: compiled %s", engine, tex.name)
        return outdir / (tex.stem + ".pdf")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table3 = [t for t in smk.input.tables if Path(t).name == "table3.tex"]
        single = doc.parent / "_table3_only.tex"
        language = "zh" if engine == "xelatex" else "en"
        single.write_text(
            render_document(
                [str(Path(t).resolve()) for t in table3], language, relative_to=doc.parent
            ).replace(
                "\\begin{document}", "\\pagestyle{empty}\n\\begin{document}\n\\setcounter{table}{2}"
            ),
            encoding="utf-8",
        )
        # the two documents compile at the same time, each in its own TeX process (about a third
        # of a second each, at the very end of a run): the document's error comes first
        from concurrent.futures import ThreadPoolExecutor

        try:
            with ThreadPoolExecutor(2) as pool:
                whole = pool.submit(compile_tex, doc, tmp)
                part = pool.submit(compile_tex, single, tmp)
                write_bytes(smk.output.pdf, whole.result().read_bytes())
                pdf = part.result()
        finally:
            single.unlink(missing_ok=True)
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "130",
                "-f",
                "1",
                "-l",
                "1",
                "-singlefile",
                str(pdf),
                str(tmp / "page"),
            ],
            check=True,
        )
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
        box = (
            max(cols.min() - m, 0),
            max(rows.min() - m, 0),
            min(cols.max() + m, a.shape[1]),
            min(rows.max() + m, a.shape[0]),
        )
        img = img.crop(box)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _stars_param(params) -> tuple[float, ...]:
    from nqp_resilience.outputs.tables import DEFAULT_STARS

    return tuple(getattr(params, "stars", DEFAULT_STARS))


def estimates_table_job(smk) -> None:
    """Rule of Tables 3-7. input: ``estimates`` (that table's JSONs), ``labels``, ``template``,
    optional ``bootstrap`` (the wild bootstrap JSONs of that table's specs); params: ``table``
    (int), ``specs`` (that table's registry entries), ``decimals``, ``stars``,
    ``control_variables``, optional ``bootstrap_p`` (tables.bootstrap_p: show the bootstrap
    p-values in brackets); output: ``table``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.estimation.record import read_estimates
    from nqp_resilience.outputs.tables import read_bootstraps, render_estimates_table

    p = smk.params
    default_controls = getattr(p, "control_variables", None)
    bootstrap = None
    if getattr(p, "bootstrap_p", False):
        bootstrap = read_bootstraps(list(getattr(smk.input, "bootstrap", None) or []))
        log.info("table %s: bootstrap p-values of %d specs", p.table, len(bootstrap))
    text = render_estimates_table(
        int(p.table),
        list(p.specs),
        read_estimates(smk.input.estimates),
        smk.input.labels,
        Path(smk.input.template).parent,
        int(p.decimals),
        _stars_param(p),
        template=Path(smk.input.template).name,
        control_variables=list(default_controls) if default_controls else None,
        bootstrap=bootstrap,
    )
    write_text(smk.output.table, text)


def bootstrap_table_job(smk) -> None:
    """Rule ``table_bootstrap`` (Table 8). input: ``bootstrap`` (the wild bootstrap JSONs,
    registry order), ``labels``, ``template``; params: ``decimals``; output: ``table``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.outputs.tables import read_bootstraps, render_bootstrap_table

    records = read_bootstraps(list(smk.input.bootstrap))
    text = render_bootstrap_table(
        records,
        smk.input.labels,
        Path(smk.input.template).parent,
        int(smk.params.decimals),
        template=Path(smk.input.template).name,
    )
    write_text(smk.output.table, text)


def indicator_table_job(smk) -> None:
    """Rule of Table 1. input: ``weights``, ``indicators``, ``labels``, ``template``;
    params: ``decimals``, ``directions`` (config entropy.directions); output: ``table``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.outputs.tables import read_weights, render_indicator_table

    text = render_indicator_table(
        read_weights(smk.input.weights),
        smk.input.indicators,
        smk.input.labels,
        Path(smk.input.template).parent,
        int(smk.params.decimals),
        dict(getattr(smk.params, "directions", {}) or {}),
        template=Path(smk.input.template).name,
    )
    write_text(smk.output.table, text)


def desc_table_job(smk) -> None:
    """Rule of Table 2. input: ``estimate`` (desc_stats.json), ``labels``, ``template``;
    params: ``decimals``; output: ``table``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.estimation.record import read_estimate
    from nqp_resilience.outputs.tables import render_desc_table

    text = render_desc_table(
        read_estimate(smk.input.estimate),
        smk.input.labels,
        Path(smk.input.template).parent,
        int(smk.params.decimals),
        template=Path(smk.input.template).name,
    )
    write_text(smk.output.table, text)


def balance_table_job(smk) -> None:
    """Rule of the balance table. input: ``estimates`` (the psm_fe JSONs, registry order),
    ``labels``, ``template``; params: ``decimals`` (of the % bias); output: ``table``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.estimation.record import read_estimate
    from nqp_resilience.outputs.tables import render_balance_table

    records = [read_estimate(p) for p in smk.input.estimates]
    text = render_balance_table(
        records,
        smk.input.labels,
        Path(smk.input.template).parent,
        int(smk.params.decimals),
        template=Path(smk.input.template).name,
    )
    write_text(smk.output.table, text)


def replication_table_job(smk) -> None:
    """Rule of the replication table. input: ``published``, ``estimates``, ``labels``, ``template``;
    params: ``decimals``; output: ``table``."""
    from nqp_resilience.data.io import read_yaml, write_text
    from nqp_resilience.estimation.record import read_estimates
    from nqp_resilience.outputs.tables import render_replication_table

    text = render_replication_table(
        read_yaml(smk.input.published),
        read_estimates(smk.input.estimates),
        smk.input.labels,
        Path(smk.input.template).parent,
        int(smk.params.decimals),
        template=Path(smk.input.template).name,
    )
    write_text(smk.output.table, text)


def document_job(smk) -> None:
    """Rule of ``tables.tex``. input: ``tables`` (the .tex files, in order); params: ``language``;
    output: ``document``."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.outputs.tables import render_document

    write_text(
        smk.output.document,
        render_document(
            list(smk.input.tables),
            smk.params.language,
            relative_to=Path(smk.output.document).parent,
        ),
    )


#: Columns of the analysis panel the trends figure reads.
TREND_COLUMNS = ("city_code", "region", "year", "Nqp", "Resil")


def figures_job(smk) -> None:
    """Rules ``figures_coefficients``, ``figures_data`` and ``figures_pscore``: the figures the
    job's outputs name, each drawn as it would be alone (docs/figures.md).

    output (each group optional, at least one): ``coefficients_pdf`` and ``coefficients_png``
    (the coefficient plot; input ``estimates``, JSON files in registry order, and optional
    ``bootstrap``, wild bootstrap JSONs whose CIs are drawn next to the CR1 CIs);
    ``trends_pdf``, ``trends_png``, ``weights_pdf`` and ``weights_png`` (the data figures; input
    ``weights``, nqp_weights.csv); and, one per PSM spec in the order of ``pscore_specs``,
    ``pscore_pdf``, ``pscore_png`` and ``pscore_caption`` (the spec's caption for the report;
    input ``pscore_caption``, the caption template). input ``panel`` (read once, only the
    columns the figures use); params: ``pscore_specs`` (spec id -> registry entry of every
    ``psm_fe`` spec, registry order), ``control_variables``, optional ``labels``.

    The font subsets of the PDF files are kept in the workflow folder, so that a rerun with the
    same labels reads them back instead of cutting them again (the same bytes;
    nqp_resilience.outputs.font_subsets).
    """
    from nqp_resilience.outputs.font_subsets import kept_subsets

    with kept_subsets():
        _draw_figures(smk)


def _draw_figures(smk) -> None:
    """The body of :func:`figures_job`."""
    from nqp_resilience.data.io import write_text
    from nqp_resilience.data.parquet import read_columns
    from nqp_resilience.estimation.specs import spec_columns
    from nqp_resilience.outputs import figures as F

    out = smk.output
    coefficients = hasattr(out, "coefficients_pdf")
    data = hasattr(out, "trends_pdf")
    controls = list(smk.params.control_variables)
    psm_specs = dict(getattr(smk.params, "pscore_specs", None) or {})
    pscore_files = list(
        zip(
            getattr(out, "pscore_pdf", []),
            getattr(out, "pscore_png", []),
            getattr(out, "pscore_caption", []),
            strict=True,
        )
    )
    if len(pscore_files) != len(psm_specs):
        raise ValueError(
            f"{len(psm_specs)} PSM specs in params.pscore_specs, {len(pscore_files)} score "
            "figures in the output"
        )
    records = _coefficient_records(smk.input.estimates) if coefficients else []
    sd_variables = list(
        dict.fromkeys(
            v for r in records for v in (r["dependent"], F.base_regressor(str(r["regressor"])))
        )
    )
    columns = [*(TREND_COLUMNS if data else ()), *sd_variables]
    for spec in psm_specs.values():
        columns += spec_columns(spec, controls)
    panel = read_columns(smk.input.panel, list(dict.fromkeys(columns)))

    if coefficients:
        F.coefficient_plot(
            records,
            out.coefficients_pdf,
            out.coefficients_png,
            labels=getattr(smk.params, "labels", None),
            sd=F.standard_deviations(panel, sd_variables),
            bootstrap=_bootstrap_records(getattr(smk.input, "bootstrap", None)),
        )
    if data:
        F.trends_by_region(panel, out.trends_pdf, out.trends_png)
        weights = _weight_records(smk.input.weights)
        F.entropy_weights_plot(weights, out.weights_pdf, out.weights_png)
    template = Path(smk.input.pscore_caption).read_text(encoding="utf-8") if psm_specs else ""
    for (sid, spec), (pdf, png, caption) in zip(psm_specs.items(), pscore_files, strict=True):
        _, dens = F.pscore_overlap_for_spec(panel, spec, controls, pdf, png)
        log.info(
            "%s: %d treated (%d on support), %d controls (%d matched); bandwidth %.4f",
            sid,
            dens["n_treated"],
            dens["n_treated_on_support"],
            dens["n_control"],
            dens["n_control_matched"],
            dens["bandwidth"],
        )
        write_text(caption, F.pscore_caption(template, sid, spec["psm"]["method"]))


def _coefficient_records(paths) -> list:
    """The estimate records the coefficient plot draws (not ``describe``, with a coefficient)."""
    from nqp_resilience.estimation.record import read_estimate

    records = [read_estimate(p) for p in paths]
    return [r for r in records if not r.is_describe and r.coef is not None]


def _bootstrap_records(paths) -> dict | None:
    """The wild bootstrap results by spec id; None without any."""
    from nqp_resilience.outputs.tables import read_bootstraps

    return read_bootstraps(list(paths or [])) or None


def _weight_records(path) -> list[dict]:
    """``nqp_weights.csv`` as a list of rows (strings; the figure converts)."""
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
