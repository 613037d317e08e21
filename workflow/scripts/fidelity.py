"""Compare one generator's synthetic rows with the real rows (rule fidelity)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.fidelity_stage import run_fidelity_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
# The classifiers, nearest-neighbour searches and BLAS use the threads
# Snakemake gave the job, never more.
run_fidelity_stage(
    train_path=snakemake.input.train,  # noqa: F821
    test_path=snakemake.input.test,  # noqa: F821
    synthetic_path=snakemake.input.synthetic,  # noqa: F821
    preprocessor_path=snakemake.input.preprocessor,  # noqa: F821
    constraints_path=snakemake.input.constraints,  # noqa: F821
    adjacency_path=snakemake.input.adjacency,  # noqa: F821
    # SMOTE has no rejection CSV: its rejection input is an empty list.
    rejection_path=snakemake.input.rejection or None,  # noqa: F821
    output_path=snakemake.output.report,  # noqa: F821
    generator=snakemake.wildcards.generator,  # noqa: F821
    section=snakemake.params.fidelity,  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
