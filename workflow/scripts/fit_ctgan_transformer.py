"""Fit CTGAN's data transformer on the training split (rule fit_ctgan_transformer)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from threadpoolctl import threadpool_limits

from iotsynth.ctgan_guided.stages import run_transformer_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
# The mixture fits use BLAS; keep them to the threads Snakemake gave the job.
with threadpool_limits(limits=snakemake.threads):  # noqa: F821
    run_transformer_stage(
        train_path=snakemake.input.train,  # noqa: F821
        dictionary_path=snakemake.input.dictionary,  # noqa: F821
        transformer_path=snakemake.output.transformer,  # noqa: F821
        columns_path=snakemake.output.columns,  # noqa: F821
        ctgan_section=snakemake.params.ctgan,  # noqa: F821
    )
