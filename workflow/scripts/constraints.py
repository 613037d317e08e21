"""Snakemake script for the rules constraints and constraint_violations."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.constraints.build import run_constraints_stage
from iotsynth.constraints.report import run_violation_stage
from iotsynth.logs import log_to_file

# Also logs an uncaught error to the rule's log before the job fails.
log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)

# The rule's outputs tell the two rules apart; their names carry a prefix in
# the by_capture module.
if "constraints" in snakemake.output.keys():  # noqa: F821
    run_constraints_stage(
        train=snakemake.input.train,  # noqa: F821
        dictionary=snakemake.input.dictionary,  # noqa: F821
        preprocessor=snakemake.input.preprocessor,  # noqa: F821
        edges=snakemake.input.edges,  # noqa: F821
        constraints=snakemake.output.constraints,  # noqa: F821
        counts=snakemake.output.counts,  # noqa: F821
        audit_dir=snakemake.params.audit_dir,  # noqa: F821
        llm_section=snakemake.params.llm,  # noqa: F821
        constraints_section=snakemake.params.constraints,  # noqa: F821
    )
else:
    run_violation_stage(
        constraints=snakemake.input.constraints,  # noqa: F821
        dictionary=snakemake.input.dictionary,  # noqa: F821
        split=snakemake.input.split,  # noqa: F821
        rates=snakemake.output.rates,  # noqa: F821
        summary=snakemake.output.summary,  # noqa: F821
    )
