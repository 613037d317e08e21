"""Build the HTML results report of the run (rule report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821 (the iotsynth package in workflow/)

from iotsynth.logs import log_to_file
from iotsynth.report import build_report

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
settings = snakemake.params.report  # noqa: F821
build_report(
    results_dir=snakemake.params.results_dir,  # noqa: F821
    config=snakemake.config,  # noqa: F821
    output_path=snakemake.output.html,  # noqa: F821
    title=settings["title"],
    max_table_rows=settings["max_table_rows"],
    # This rule's own benchmark file, if present, is from an earlier run.
    skip_rules=[snakemake.rule],  # noqa: F821
    benchmark_patterns=snakemake.params.benchmark_patterns,  # noqa: F821
    by_capture_dir=snakemake.params.by_capture_dir,  # noqa: F821
)
