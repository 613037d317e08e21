"""Write the balanced splits of one generator and protocol (rule balance)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

from iotsynth.gan.balance import run_balance_stage
from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
run_balance_stage(
    split_paths={name: snakemake.input[name] for name in ("train", "val", "test")},  # noqa: F821
    synthetic_path=snakemake.input.synthetic,  # noqa: F821
    output_paths={name: snakemake.output[name] for name in ("train", "val", "test")},  # noqa: F821
    counts_path=snakemake.output.counts,  # noqa: F821
    protocol=snakemake.wildcards.protocol,  # noqa: F821
    target=snakemake.params.target,  # noqa: F821
)
