"""Snakemake script for rule graph: build the feature-relationship graph."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # the iotsynth package in workflow/

import logging

from threadpoolctl import threadpool_limits

from iotsynth.graph_stage import run_graph_stage

logging.basicConfig(
    filename=snakemake.log[0],  # noqa: F821 (injected by Snakemake)
    filemode="w",
    level=logging.INFO,
    format="%(asctime)s %(levelname)s %(name)s: %(message)s",
)

try:
    # Keep numpy's BLAS within the cores Snakemake gave the job.
    with threadpool_limits(limits=snakemake.threads):  # noqa: F821
        run_graph_stage(
            train=snakemake.input.train,  # noqa: F821
            dictionary=snakemake.input.dictionary,  # noqa: F821
            adjacency=snakemake.output.adjacency,  # noqa: F821
            edges=snakemake.output.edges,  # noqa: F821
            centrality=snakemake.output.centrality,  # noqa: F821
            graphml=snakemake.output.graphml,  # noqa: F821
            figure=snakemake.output.figure,  # noqa: F821
            section=snakemake.params.graph,  # noqa: F821
        )
except Exception:
    logging.getLogger(__name__).exception("graph failed")
    raise
