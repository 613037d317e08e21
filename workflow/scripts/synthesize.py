"""Draw the synthetic rows that top up every split (rules synthesize and synthesize_ctgan)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

import torch
from threadpoolctl import threadpool_limits

from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
torch.set_num_threads(snakemake.threads)  # noqa: F821
shared = {
    "model_path": snakemake.input.model,  # noqa: F821
    "split_paths": {name: snakemake.input[name] for name in ("train", "val", "test")},  # noqa: F821
    "preprocessor_path": snakemake.input.preprocessor,  # noqa: F821
    "constraints_path": snakemake.input.constraints,  # noqa: F821
    "synthetic_path": snakemake.output.synthetic,  # noqa: F821
    "rejection_path": snakemake.output.rejection,  # noqa: F821
    "balance_section": snakemake.params.balance,  # noqa: F821
    "rejection": snakemake.params.rejection,  # noqa: F821
    "seed": snakemake.params.seed,  # noqa: F821
}
with threadpool_limits(limits=snakemake.threads):  # noqa: F821
    # Only the WGAN rule has the generator wildcard, which names its variant.
    # The script checks for it rather than the rule name, because rule names
    # carry a prefix in the by_capture module.
    if "generator" in snakemake.wildcards.keys():  # noqa: F821
        from iotsynth.gan.sample import run_synthesis_stage

        run_synthesis_stage(generator_name=snakemake.wildcards.generator, **shared)  # noqa: F821
    else:
        from iotsynth.ctgan_guided.stages import run_synthesis_stage

        run_synthesis_stage(**shared)
