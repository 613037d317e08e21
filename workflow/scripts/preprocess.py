"""Fit the preprocessor on the training split (rule preprocess)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.logs import log_to_file
from iotsynth.preprocess import fit_preprocessor

log_to_file(snakemake.log[0])
fit_preprocessor(
    train_path=snakemake.input.train,
    dictionary_path=snakemake.input.dictionary,
    output_path=snakemake.output.preprocessor,
)
