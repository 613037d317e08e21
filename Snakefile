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
include: "workflow/stages.smk"


# The stages from the split onwards once more on the by_capture split, where
# every capture lands whole in one split. They read the main run's packet
# table and feature dictionary and write everything else to
# results/by_capture/. by_capture.balancings chooses what they evaluate.
module by_capture:
    snakefile:
        "workflow/stages.smk"
    config:
        by_capture_config()
    replace_prefix:
        {"results/": "results/by_capture/"}


use rule * from by_capture as by_capture_*


include: "workflow/rules/by_capture.smk"
include: "workflow/rules/fidelity.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        final_targets(),
        rules.report.output.html,
    default_target: True
