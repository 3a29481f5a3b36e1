# NQP -> urban economic resilience: raw extracts to the paper's tables.
#
#   snakemake --cores 8                                  # embedded (simulated) default data
#   snakemake --cores 8 --config raw_dir=/path/to/raw    # your own extracts (layout: README)
#
# The config is validated against schemas/config.schema.yaml before any rule runs.

from glob import glob

from nqp_resilience.config import validate_config
from nqp_resilience.workflow import RAW_FILES, yearbook_path


configfile: "config.yaml"


validate_config(config, "schemas/config.schema.yaml")

RAW = config["raw_dir"]
RESULTS = config["results_dir"]
YEARS = list(range(config["years"]["start"], config["years"]["end"] + 1))
YEAR_RANGE = [config["years"]["start"], config["years"]["end"]]


wildcard_constraints:
    year="|".join(str(y) for y in YEARS),
    source="|".join(RAW_FILES),


def yearbook_input(wildcards):
    return yearbook_path(RAW, wildcards.year)


def source_input(wildcards):
    return f"{RAW}/{RAW_FILES[wildcards.source]}"


include: "rules/ingest.smk"
include: "rules/clean.smk"


rule all:
    default_target: True
    input:
        panel=rules.build_panel.output.panel,
        audit=rules.build_panel.output.audit,
        sample_log=rules.build_panel.output.sample_log,
