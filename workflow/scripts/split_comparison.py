"""Set the stratified split's scores beside the by_capture split's (rule split_comparison)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.classify.tables import run_split_comparison_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
run_split_comparison_stage(
    paths={name: snakemake.input[name]  # noqa: F821
           for name in ("stratified", "by_capture", "stratified_windows", "by_capture_windows")},
    stem=snakemake.output.csv[: -len(".csv")],  # noqa: F821
)
