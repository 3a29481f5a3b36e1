# Shared definitions: config validation, paths, wildcard constraints and input functions.
# Included first by the Snakefile.

import math
import os
import shlex
import shutil
import sys

# Only light modules here (standard library, PyYAML, jsonschema): Snakemake imports this file each
# time it reads the workflow, dry runs included (tests/test_registry.py keeps it so).
from nqp_resilience.config import bootstrap_options, validate_config_cached, variable_options
from nqp_resilience.data.io import read_yaml
from nqp_resilience.data.raw_files import (
    CODEBOOK,
    check_raw_files,
    raw_file_table,
    raw_source_path,
    raw_sources_by_grain,
    report_paths,
    yearbook_path,
)
from nqp_resilience.estimation.specs import (
    ESTIMATORS,
    bootstrap_spec_ids,
    spec_batches,
    validate_specs,
    with_imputed_dependent,
)
from nqp_resilience.indices.variables import check_instrument_config
from nqp_resilience.outputs.tables import unshown_specs
from nqp_resilience.runner import plain_params_check, stop_on_user_error
from nqp_resilience.shell_job import files_payload, set_shell_job_python, settings_payload
from nqp_resilience.sim.montecarlo import monte_carlo_config

# the params of the jobs are plain config values, so Snakemake compares them without importing
# pandas (see the function)
plain_params_check()

# the checks below stop the run with the message of a user error (no traceback) before any job
with stop_on_user_error():
    # (validated once per distinct configuration: see the function)
    validate_config_cached(
        config, "schemas/config.schema.yaml", source="config (config.yaml and --config)"
    )

    RAW = config["raw_dir"]
    RESULTS = config["results_dir"]
    ATTRIBUTES = config["city_attributes"]
    YEARS = list(range(config["years"]["start"], config["years"]["end"] + 1))
    YEAR_RANGE = [config["years"]["start"], config["years"]["end"]]

    # the raw sources and their files, read once from the codebook (a new source is one entry
    # there): {source: file under raw_dir}, and the sources by grain for the panel job's inputs
    RAW_FILES = raw_file_table(CODEBOOK)
    RAW_SOURCES = raw_sources_by_grain(CODEBOOK)

    # every raw file of the study period present, one extract per yearbook year: checked here, since
    # Snakemake keeps an existing intermediate result when the raw file behind it disappears
    check_raw_files(
        RAW,
        YEAR_RANGE,
        ATTRIBUTES,
        config["nqp1"]["include_central"],
        codebook=CODEBOOK,
    )

    # a time-invariant instrument with city fixed effects stops here, before any job runs
    check_instrument_config(config["iv"]["relief"]["interact"], config["iv"]["fixed_effects"])

    # options passed as params to the variable jobs, so that changing one reruns exactly those jobs
    VARIABLE_OPTIONS = variable_options(config)
    CODEBOOK_OPTIONS = dict(VARIABLE_OPTIONS, entropy=config["entropy"], nqp1=config["nqp1"])

    # the specification registry, checked against the analysis-panel variables before any job runs
    SPECS = validate_specs(config["specs"], config["control_variables"])
    # estimation.imputed_dependent: drop adds the filter imputed_<dependent> == 0 to every
    # regression spec whose dependent has the flag (keep, the default, leaves the specs as given)
    SPECS = with_imputed_dependent(SPECS, config["estimation"]["imputed_dependent"])
    PUBLISHED_SPECS = [s for s in read_yaml("resources/published.yaml")["specs"] if s in SPECS]
    REGRESSION_SPECS = [sid for sid, spec in SPECS.items() if spec["estimator"] != "describe"]
    PSM_SPECS = [sid for sid, spec in SPECS.items() if spec["estimator"] == "psm_fe"]
    # the specs with a wild bootstrap (bootstrap.specs): WCR/WCU for ols_fe, WRE for iv_fe
    BOOTSTRAP_SPECS = bootstrap_spec_ids(config["bootstrap"]["specs"], SPECS)
    # estimation.batch_size > 1: {batch: [spec ids]} run by one job each (rules/estimation.smk)
    SPEC_BATCHES = spec_batches(SPECS, config["estimation"]["batch_size"])
    BATCHED_SPECS = {sid for ids in SPEC_BATCHES.values() for sid in ids}

    # the Monte Carlo study's settings (its specs, planted parameters and parameter files checked)
    MONTE_CARLO_CONFIG = monte_carlo_config(config)


def yearbook_input(wildcards):
    """The raw yearbook file of one year (.csv or .xlsx); both, or neither, stop the run with a
    message naming the files."""
    return yearbook_path(RAW, wildcards.year)


def source_input(wildcards):
    """The raw file of one non-yearbook source; a missing file stops the run naming it."""
    return raw_source_path(RAW, wildcards.source, CODEBOOK)


def report_inputs(wildcards):
    """Every government work report the study period needs (each province x year, and the
    central government's if nqp1.include_central), plus any other report in the raw folder; a
    missing one stops the run naming it."""
    return report_paths(RAW, ATTRIBUTES, YEAR_RANGE, config["nqp1"]["include_central"])


def spec_pattern(estimator, batched=True):
    """Wildcard constraint: the ids of the specs of one estimator (no match if there are none);
    with batched=False without the specs that a batch job estimates (estimation.batch_size)."""
    ids = [
        sid
        for sid, spec in SPECS.items()
        if spec["estimator"] == estimator and (batched or sid not in BATCHED_SPECS)
    ]
    return "|".join(ids) if ids else "(?!)"


def spec_of(wildcards):
    """The registry entry of one spec (a param, so editing it reruns exactly that job)."""
    return SPECS[wildcards.spec]


# Shell jobs (nqp_resilience.shell_job): every Python rule runs its thin script as a shell
# command, `python scripts/<stage>/<rule>.py LOG PAYLOAD FILES`, without Snakemake's script
# preamble; in a local run the script hands the job to the run's job server when there is one
# (nqp_resilience.job_server, config job_server).
def script_job(script):
    """The shell command of a job that runs ``scripts/<script>`` on ``params.job`` and
    ``params.files``, with the Python named by ``$NQP_PYTHON`` (set_job_python; else ``python``)."""
    # relative to the working directory, so that a moved or copied workflow folder keeps its
    # commands (Snakemake reruns a shell job whose command text changed)
    path = shlex.quote(os.path.relpath(os.path.join(workflow.basedir, "scripts", script)))
    return f'"${{{{NQP_PYTHON:-python}}}}" {path} {{log:q}} {{params.job:q}} {{params.files:q}}'


def set_job_python():
    """Name the Python of the shell jobs in ``$NQP_PYTHON`` (the Snakefile calls this once)."""
    methods = workflow.deployment_settings.deployment_method
    set_shell_job_python(any("conda" in str(m).lower() for m in methods))


def start_job_server_early():
    """A run that looks cold (no analysis panel yet) starts its job server while Snakemake
    builds the DAG (nqp_resilience.job_server.start_early; the Snakefile calls this once)."""
    if config["job_server"]:
        from nqp_resilience import job_server

        job_server.start_early(workflow, f"{RESULTS}/panel/analysis.parquet")


def job_params(**params):
    """``params.job`` of a shell job (nqp_resilience.shell_job.settings_payload): its wildcards
    and ``params`` (a param given as a function is called with the job's wildcards, as Snakemake
    calls a param function). A function of the wildcards only, so that Snakemake records it and
    a change of any of these params reruns the job, as for the params of a script job."""

    def payload(wildcards):
        values = {k: v(wildcards) if callable(v) else v for k, v in params.items()}
        return settings_payload(wildcards, values)

    return payload


def job_files(wildcards, input, output, threads):
    """``params.files`` of a shell job (nqp_resilience.shell_job.files_payload): its input and
    output paths and threads (Snakemake compares these itself, not as params)."""
    return files_payload(input, output, threads)


def estimation_params(**specs):
    """``params.job`` of an estimation job: its ``spec`` (a param function) or ``specs``, the
    control variables and the singleton rule."""
    return job_params(
        **specs,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
    )


# tables: labels by language, the files tables.tex inputs, and whether a TeX engine is available
LABELS = f"resources/labels/labels_{config['tables']['language']}.yaml"
TABLE_NUMBERS = sorted({spec["table"] for spec in SPECS.values() if 3 <= spec["table"] <= 7})
TABLE_FILES = (
    [f"{RESULTS}/tables/table1.tex", f"{RESULTS}/tables/table2.tex"]
    + [f"{RESULTS}/tables/table{n}.tex" for n in TABLE_NUMBERS]
    + ([f"{RESULTS}/tables/table8.tex"] if BOOTSTRAP_SPECS else [])
    + [f"{RESULTS}/tables/psm_balance.tex", f"{RESULTS}/tables/replication.tex"]
)
# a spec no table shows (e.g. table: 8) is still estimated: say so, once, before any job runs
# (the first five in full; a registry of hundreds of such specs gets one line for the rest)
_UNSHOWN = unshown_specs(SPECS.values(), "resources/templates", RESULTS)
for _warning in _UNSHOWN[:5]:
    print(f"warning: {_warning}", file=sys.stderr)
if len(_UNSHOWN) > 5:
    print(
        f"warning: {len(_UNSHOWN) - 5} more specs are shown in no table; their estimates are "
        f"still written to {RESULTS}/estimates/",
        file=sys.stderr,
    )
TEX_ENGINE = "xelatex" if config["tables"]["language"] == "zh" else "pdflatex"
HAVE_TEX = bool(shutil.which(TEX_ENGINE) and shutil.which("pdftoppm"))
if not HAVE_TEX:
    print(
        f"note: {TEX_ENGINE} or pdftoppm is not on PATH, so results/tables/tables.pdf is skipped "
        "(the .tex files are still built); install texlive-latex-base, texlive-latex-recommended "
        "and poppler-utils to compile them",
        file=sys.stderr,
    )


def table_specs(wildcards):
    """The registry entries shown in table {number}, in registry order."""
    return [spec for spec in SPECS.values() if spec["table"] == int(wildcards.number)]


def table_estimate_files(wildcards):
    """Exactly the estimates a table shows."""
    return [f"{RESULTS}/estimates/{spec['id']}.json" for spec in table_specs(wildcards)]


def bootstrap_file(spec):
    """The combined wild bootstrap result of one spec."""
    return f"{RESULTS}/bootstrap/{spec}.json"


def table_bootstrap_files(wildcards):
    """The bootstrap results Tables 3 and 5-7 show under their coefficients (tables.bootstrap_p),
    else none, so that the tables do not wait for (or rerun after) the bootstrap. Table 4 mixes
    IV and matching columns; its bootstrap results are in Table 8."""
    if not config["tables"]["bootstrap_p"] or int(wildcards.number) == 4:
        return []
    return [bootstrap_file(s["id"]) for s in table_specs(wildcards) if s["id"] in BOOTSTRAP_SPECS]


# Bootstrap options, passed as params of the jobs that use them. Changing reps, seed, weights or
# the bootstrap cluster reruns the shards; changing the variant, the null, the level or the
# p-value type reruns only the reduce jobs.
BOOTSTRAP_DRAWS, BOOTSTRAP_INFERENCE = bootstrap_options(config)
BOOTSTRAP_SHARDS = config["bootstrap"]["shards"]


def bootstrap_shard_runtime(wildcards, attempt):
    """Minutes for one shard job: start-up and set-up take seconds, the draws about 0.01 s per
    1,000 at 230 clusters (docs/bootstrap.md); a wide margin that grows with every retry."""
    draws = config["bootstrap"]["reps"] / BOOTSTRAP_SHARDS
    return attempt * (5 + math.ceil(draws / 200_000))


# the Monte Carlo study (rules/monte_carlo.smk): its seeds, folder and seed records
MC = config["monte_carlo"]
MC_SEEDS = range(MC["seeds"]["first"], MC["seeds"]["first"] + MC["seeds"]["count"])
MC_DIR = f"{RESULTS}/monte_carlo"


def monte_carlo_records(wildcards=None):
    """Every seed record of every parameter set."""
    return [f"{MC_DIR}/{pset}/seed_{seed}.json" for pset in MC["params"] for seed in MC_SEEDS]
