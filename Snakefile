# deepsnow: Sentinel-2 scenes -> snow/cloud labels -> patches -> cycleGAN -> metrics -> figures.
# Thin on purpose: rules live in workflow/rules (one file per stage), the code they
# run in the deepsnow package (workflow/deepsnow), the config schema in workflow/schemas.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/mask.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/simcover.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/synthesize.smk"
include: "workflow/rules/change.smk"
include: "workflow/rules/comparison.smk"


rule all:
    """The whole run: every figure (PNG), and with them everything they are drawn from."""
    default_target: True
    input:
        final_outputs(),
