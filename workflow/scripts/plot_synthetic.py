"""Draw figures 8 and 9 of one generator (rule plot_synthetic) or figure 10 (rule plot_class_distribution)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

import pandas as pd
from threadpoolctl import threadpool_limits

from iotsynth.logs import log_to_file
from iotsynth.plots_synthetic import plot_class_distribution, run_fidelity_figures

log_to_file(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
with threadpool_limits(limits=snakemake.threads):  # noqa: F821
    # Told apart by their outputs: rule names carry a prefix in the by_capture module.
    if "projection" not in snakemake.output.keys():  # noqa: F821
        counts = pd.read_csv(snakemake.input.counts)  # noqa: F821
        plot_class_distribution(counts, snakemake.output.figure, snakemake.params.caption)  # noqa: F821
    else:
        run_fidelity_figures(
            train_path=snakemake.input.train,  # noqa: F821
            synthetic_path=snakemake.input.synthetic,  # noqa: F821
            preprocessor_path=snakemake.input.preprocessor,  # noqa: F821
            projection_path=snakemake.output.projection,  # noqa: F821
            correlation_path=snakemake.output.correlation,  # noqa: F821
            generator_name=snakemake.wildcards.generator,  # noqa: F821
            figure_section=snakemake.params.figures,  # noqa: F821
            seed=snakemake.params.seed,  # noqa: F821
        )
