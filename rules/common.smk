# Shared definitions: config validation, paths, wildcard constraints and input functions.
# Included first by the Snakefile.

import shutil
import sys
from glob import glob

from nqp_resilience.config import validate_config
from nqp_resilience.io import read_yaml
from nqp_resilience.specs import validate_specs
from nqp_resilience.variables import check_instrument_config
from nqp_resilience.workflow import RAW_FILES, yearbook_path


validate_config(config, "schemas/config.schema.yaml", source="config (config.yaml and --config)")

RAW = config["raw_dir"]
RESULTS = config["results_dir"]
YEARS = list(range(config["years"]["start"], config["years"]["end"] + 1))
YEAR_RANGE = [config["years"]["start"], config["years"]["end"]]

# a time-invariant instrument with city fixed effects stops here, before any job runs
check_instrument_config(config["iv"]["relief"]["interact"], config["iv"]["fixed_effects"])

# options passed as params to the variable jobs, so that changing one reruns exactly those jobs
VARIABLE_OPTIONS = dict(
    years=config["years"],
    resil=config["resil"],
    mrd=config["mrd"],
    mechanisms=config["mechanisms"],
    iv=config["iv"],
    heterogeneity=config["heterogeneity"],
)
CODEBOOK_OPTIONS = dict(VARIABLE_OPTIONS, entropy=config["entropy"], nqp1=config["nqp1"])

# the specification registry, checked against the analysis-panel variables before any job runs
SPECS = validate_specs(config["specs"], config["control_variables"])
PUBLISHED_SPECS = [s for s in read_yaml("resources/published.yaml")["specs"] if s in SPECS]
REGRESSION_SPECS = [sid for sid, spec in SPECS.items() if spec["estimator"] != "describe"]
PSM_SPECS = [sid for sid, spec in SPECS.items() if spec["estimator"] == "psm_fe"]


def yearbook_input(wildcards):
    """The raw yearbook file of one year (.csv, else .xlsx)."""
    return yearbook_path(RAW, wildcards.year)


def source_input(wildcards):
    """The raw file of one non-yearbook source (SPEC §3 layout)."""
    return f"{RAW}/{RAW_FILES[wildcards.source]}"


def report_inputs():
    """Every government work report in the raw folder."""
    return sorted(glob(f"{RAW}/reports/*.txt"))


def spec_pattern(estimator):
    """Wildcard constraint: the ids of the specs of one estimator (no match if there are none)."""
    ids = [sid for sid, spec in SPECS.items() if spec["estimator"] == estimator]
    return "|".join(ids) if ids else "(?!)"


def spec_of(wildcards):
    """The registry entry of one spec (a param, so editing it reruns exactly that job)."""
    return SPECS[wildcards.spec]


# tables: labels by language, the files tables.tex inputs, and whether a TeX engine is available
LABELS = f"resources/labels/labels_{config['tables']['language']}.yaml"
TABLE_NUMBERS = sorted({spec["table"] for spec in SPECS.values() if 3 <= spec["table"] <= 7})
TABLE_FILES = (
    [f"{RESULTS}/tables/table1.tex", f"{RESULTS}/tables/table2.tex"]
    + [f"{RESULTS}/tables/table{n}.tex" for n in TABLE_NUMBERS]
    + [f"{RESULTS}/tables/psm_balance.tex", f"{RESULTS}/tables/replication.tex"]
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
