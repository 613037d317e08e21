"""Train and score the classifiers on one balancing and protocol (rule evaluate)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.classify.evaluate import run_evaluation_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
# Classifiers and BLAS use the threads Snakemake gave the job (the rule's
# threads, set by the profile or --set-threads), never more.
run_evaluation_stage(
    split_paths={name: snakemake.input[name] for name in ("train", "val", "test")},  # noqa: F821
    preprocessor_path=snakemake.input.preprocessor,  # noqa: F821
    metrics_path=snakemake.output.metrics,  # noqa: F821
    per_class_path=snakemake.output.per_class,  # noqa: F821
    figure_path=snakemake.output.figure,  # noqa: F821
    predictions_path=snakemake.output.predictions,  # noqa: F821
    balancing=snakemake.wildcards.balancing,  # noqa: F821
    protocol=snakemake.wildcards.protocol,  # noqa: F821
    section=snakemake.params.classifiers,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
