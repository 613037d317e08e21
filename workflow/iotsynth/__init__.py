"""iotsynth: IoT device identification under class imbalance.

The library behind the Snakemake workflow: feature extraction from captures,
splits, preprocessing, the feature graph, constraint sets and generators.
"""

__version__ = "0.1.0"
