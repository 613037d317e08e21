"""Draw the SMOTE rows that top up every split to the per-class targets (rule smote)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.logs import log_to_file
from iotsynth.smote import run_smote_stage

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
run_smote_stage(
    split_paths={name: snakemake.input[name] for name in ("train", "val", "test")},  # noqa: F821
    preprocessor_path=snakemake.input.preprocessor,  # noqa: F821
    output_path=snakemake.output.synthetic,  # noqa: F821
    target=snakemake.params.target,  # noqa: F821
    k_neighbors=snakemake.params.smote["k_neighbors"],  # noqa: F821
    method=snakemake.params.smote["method"],  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
)
