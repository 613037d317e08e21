"""Snakemake script for the rule validate."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from threadpoolctl import threadpool_limits

from iotsynth.logs import log_to_file
from iotsynth.validation.stage import run_validation_stage

# Also logs an uncaught error to the rule's log before the job fails.
log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)

# The nearest-neighbour distances run in BLAS, which would take every core.
with threadpool_limits(limits=snakemake.threads):  # noqa: F821
    run_validation_stage(
        synthetic=snakemake.input.synthetic,  # noqa: F821
        train=snakemake.input.train,  # noqa: F821
        preprocessor=snakemake.input.preprocessor,  # noqa: F821
        constraints=snakemake.input.constraints,  # noqa: F821
        dictionary=snakemake.input.dictionary,  # noqa: F821
        output=snakemake.output.validation,  # noqa: F821
        validation_section=snakemake.params.validation,  # noqa: F821
        llm_section=snakemake.params.llm,  # noqa: F821
        generator=snakemake.wildcards.generator,  # noqa: F821
        seed=snakemake.params.seed,  # noqa: F821
        top_categories=snakemake.params.top_categories,  # noqa: F821
    )
