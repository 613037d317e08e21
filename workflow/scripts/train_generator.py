"""Train a generator: one conditional WGAN-GP variant (rule train_generator) or the CTGAN baseline (rule train_ctgan)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

import torch
from threadpoolctl import threadpool_limits

from iotsynth.logs import log_to_file

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
# Torch, BLAS and the CTGAN transformer's joblib workers use the threads
# Snakemake gave the job (the rule's threads, set by the profile or
# --set-threads), never more.
torch.set_num_threads(snakemake.threads)  # noqa: F821
shared = {
    "train_path": snakemake.input.train,  # noqa: F821
    "preprocessor_path": snakemake.input.preprocessor,  # noqa: F821
    "constraints_path": snakemake.input.constraints,  # noqa: F821
    "model_path": snakemake.output.model,  # noqa: F821
    "losses_path": snakemake.output.losses,  # noqa: F821
    "hyperparameters_path": snakemake.output.hyperparameters,  # noqa: F821
    "figure_path": snakemake.output.figure,  # noqa: F821
    "checkpoint_dir": snakemake.params.checkpoint_dir,  # noqa: F821
    "wgan_section": snakemake.params.wgan,  # noqa: F821
    "seed": snakemake.params.seed,  # noqa: F821
}
with threadpool_limits(limits=snakemake.threads):  # noqa: F821
    # Only the CTGAN rule has a transformer input. The script checks for it
    # rather than the rule name, because rule names carry a prefix in the
    # by_capture module.
    if "transformer" in snakemake.input.keys():  # noqa: F821
        from iotsynth.ctgan_guided.stages import run_training_stage

        run_training_stage(
            transformer_path=snakemake.input.transformer,  # noqa: F821
            ctgan_section=snakemake.params.ctgan,  # noqa: F821
            processes=snakemake.threads,  # noqa: F821
            **shared,
        )
    else:
        from iotsynth.gan.train import run_training_stage

        run_training_stage(
            adjacency_path=snakemake.input.adjacency,  # noqa: F821
            generator_name=snakemake.wildcards.generator,  # noqa: F821
            **shared,
        )
