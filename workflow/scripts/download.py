"""Download and verify the IoT Sentinel captures (rule download_captures)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.download import download_captures
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])
download_captures(
    url=snakemake.params.url,
    archive_folder=snakemake.params.archive_folder,
    manifest=snakemake.input.manifest,
    captures_dir=snakemake.params.captures_dir,
    marker=snakemake.output.marker,
    timeout=snakemake.params.timeout,
)
