"""Extract the features of one capture (rule extract_capture)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.captures import Capture
from iotsynth.logs import log_to_file
from iotsynth.packets import extract_to_files

log_to_file(snakemake.log[0])
extract_to_files(
    Capture(**snakemake.params.capture),
    parquet_path=snakemake.output.table,
    report_path=snakemake.output.report,
    strict=snakemake.params.strict,
)
