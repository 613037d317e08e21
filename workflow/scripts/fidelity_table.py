"""Write the fidelity table, one row per generator (rule fidelity_table)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from pathlib import Path

from iotsynth.fidelity_stage import run_fidelity_table_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
csv_path = Path(snakemake.output.csv)  # noqa: F821
run_fidelity_table_stage(
    # The reports input lists the files in the order of params.generators.
    report_paths=dict(zip(snakemake.params.generators, snakemake.input.reports)),  # noqa: F821
    stem=csv_path.with_suffix(""),
)
