"""Merge the per-capture packet tables (rule merge_features)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.logs import log_to_file
from iotsynth.packets import merge_captures

log_to_file(snakemake.log[0])
merge_captures(
    parquet_paths=list(snakemake.input.tables),
    report_paths=list(snakemake.input.reports),
    packets_path=snakemake.output.packets,
    dictionary_path=snakemake.output.dictionary,
    skipped_path=snakemake.output.skipped,
    dropped_path=snakemake.output.dropped,
    session_identifying=snakemake.params.session_identifying,
)
