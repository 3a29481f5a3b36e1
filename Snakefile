# NQP -> urban economic resilience: raw extracts to the paper's tables.
#
#   snakemake --cores 8                                  # embedded (simulated) default data
#   snakemake --cores 8 --config raw_dir=/path/to/raw    # your own extracts (layout: README)
#
# The config is validated against schemas/config.schema.yaml (rules/common.smk) before any
# rule runs.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/ingest.smk"
include: "rules/clean.smk"


rule all:
    default_target: True
    input:
        panel=rules.build_panel.output.panel,
        audit=rules.build_panel.output.audit,
        sample_log=rules.build_panel.output.sample_log,
