"""Score device-type prediction from windows of k packets (rule windows)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.classify.windows import run_windows_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
pairs = [(balancing, protocol) for balancing, protocol in snakemake.params.pairs]  # noqa: F821
run_windows_stage(
    # The predictions input lists the files in the order of params.pairs.
    prediction_paths=dict(zip(pairs, snakemake.input.predictions)),  # noqa: F821
    section=snakemake.params.windows,  # noqa: F821
    stem=snakemake.output.csv[: -len(".csv")],  # noqa: F821
)
