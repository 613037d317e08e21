"""Write the classifier tables and the comparison with the published values (rule tables)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from pathlib import Path

from iotsynth.classify.tables import run_tables_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
pairs = [(balancing, protocol) for balancing, protocol in snakemake.params.pairs]  # noqa: F821
run_tables_stage(
    # The metrics input lists the files in the order of params.pairs.
    metrics_paths=dict(zip(pairs, snakemake.input.metrics)),  # noqa: F821
    reference_path=snakemake.input.reference,  # noqa: F821
    folder=Path(snakemake.output.comparison).parent,  # noqa: F821
    comparison_path=snakemake.output.comparison,  # noqa: F821
)
