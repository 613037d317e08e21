# Stages from the split onwards. The Snakefile includes them for the main
# run and loads them again as the by_capture module (see the Snakefile).

include: "rules/common.smk"
include: "rules/split.smk"
include: "rules/preprocess.smk"
include: "rules/graph.smk"
include: "rules/constraints.smk"
include: "rules/generators.smk"
include: "rules/ctgan.smk"
include: "rules/evaluate.smk"
