# iotsynth: IoT device identification under class imbalance.
# From captures to per-packet features, splits, the feature graph, constraint
# sets, generators and classifiers. Run `snakemake --cores N`; see README.md.

import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# Rules and scripts import the iotsynth package from workflow/, installed or not.
sys.path.insert(0, f"{workflow.basedir}/workflow")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


wildcard_constraints:
    device=r"[A-Za-z0-9._+-]+",
    name=r"[A-Za-z0-9._+-]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/graph.smk"
include: "workflow/rules/constraints.smk"
include: "workflow/rules/generators.smk"
include: "workflow/rules/ctgan.smk"
include: "workflow/rules/evaluate.smk"


localrules:
    all,


rule all:
    input:
        final_targets(),
    default_target: True
