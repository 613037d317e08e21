"""Snakemake script for the rule validation_table."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.logs import log_to_file
from iotsynth.validation.table import run_validation_table_stage

# Also logs an uncaught error to the rule's log before the job fails.
log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)

run_validation_table_stage(
    paths=snakemake.input.validations,  # noqa: F821
    stem=snakemake.params.stem,  # noqa: F821
)
