"""Split the packet table into train, val and test (rule split)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from pathlib import Path

from iotsynth.logs import log_to_file
from iotsynth.split import split_packet_table

log_to_file(snakemake.log[0])
split_packet_table(
    packets_path=snakemake.input.packets,
    output_paths={
        "train": snakemake.output.train,
        "val": snakemake.output.val,
        "test": snakemake.output.test,
    },
    # Table 6 is written as <stem>.csv and <stem>.md, the rule's table_csv and table_md.
    table_stem=Path(snakemake.output.table_csv).with_suffix(""),
    mode=snakemake.params.mode,
    shares=snakemake.params.shares,
    seed=snakemake.params.seed,
)
