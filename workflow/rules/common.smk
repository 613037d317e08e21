# Helpers shared by the stage files: the capture table and the targets of `all`.

import copy
import functools
import os
from pathlib import Path

from iotsynth import captures as capture_sources
from iotsynth.download import CAPTURES_DIR, VERIFIED_MARKER


def use_download():
    dataset = config["dataset"]
    return dataset["capture_list"] is None and dataset["captures_dir"] is None


@functools.cache
def capture_table():
    """Map capture id to Capture for every capture the configuration selects."""
    dataset = config["dataset"]
    device_types = dataset["device_types"]
    if dataset["capture_list"] is not None:
        found = capture_sources.from_list(dataset["capture_list"])
    elif dataset["captures_dir"] is not None:
        found = capture_sources.from_folder(dataset["captures_dir"], device_types)
    else:
        found = capture_sources.from_manifest(
            dataset["download"]["manifest"], CAPTURES_DIR, device_types
        )
    chosen = capture_sources.select(
        found, dataset["devices"], dataset["max_captures_per_device"]
    )
    return {capture.capture_id: capture for capture in chosen}


def capture_of(wildcards):
    return capture_table()[f"{wildcards.device}/{wildcards.name}"]


def extract_inputs(wildcards):
    """The capture file (or the verified download) and the device's MAC file."""
    capture = capture_of(wildcards)
    if use_download():
        # Downloaded files are checked against the manifest once, as a whole.
        return {"verified": VERIFIED_MARKER}
    inputs = {"capture": capture.path}
    if capture.mac_file is not None and Path(capture.mac_file).is_file():
        inputs["mac_file"] = capture.mac_file
    return inputs


def capture_outputs(kind):
    suffix = {"tables": "parquet", "reports": "json"}[kind]
    return [
        f"results/features/captures/{capture_id}.{suffix}"
        for capture_id in capture_table()
    ]


def final_targets():
    targets = [
        "results/features/packets.parquet",
        "results/features/feature_dictionary.csv",
        "results/features/skipped_captures.csv",
        "results/features/dropped_packets.csv",
        "results/tables/table06_split.csv",
        "results/tables/table06_split.md",
        "results/preprocess/preprocessor.json",
        "results/graph/adjacency.csv",
        "results/graph/edges.csv",
        "results/graph/centrality.csv",
        "results/graph/feature_graph.graphml",
        "results/figures/figure06_feature_graph.png",
        "results/constraints/constraints.json",
        "results/constraints/counts.csv",
        "results/constraints/violations/train_summary.csv",
        "results/constraints/violations/val_summary.csv",
    ]
    # The generators, baselines and classifiers follow the balancings that
    # classifiers.balancings asks to evaluate.
    balancings = config["classifiers"]["balancings"]
    wgan_variants = [name for name in config["wgan"]["variants"] if name in balancings]
    targets += generator_targets(wgan_variants)
    if "ctgan" in balancings:
        targets += ctgan_targets()
    targets += evaluation_targets()
    targets += by_capture_targets()
    targets += fidelity_targets()
    targets += validation_targets()
    return targets


# Used by final_targets.
def generator_targets(variants):
    """Files of the generator stages of the given WGAN variants for rule all."""
    if not variants:
        return []
    targets = ["results/figures/figure10_class_distribution.png"]
    for generator in variants:
        targets += [
            f"results/models/{generator}/model.pt",
            f"results/figures/figure08_{generator}_pca_tsne.png",
            f"results/figures/figure09_{generator}_correlation.png",
        ]
        for protocol in BALANCE_PROTOCOLS:
            targets += [f"results/balanced/{generator}/{protocol}/{split}.parquet" for split in SPLITS]
    return targets


# Used by final_targets.
def ctgan_targets():
    """Files of the CTGAN stages for rule all."""
    targets = [
        "results/models/ctgan/model.pt",
        "results/figures/figure11_ctgan_pca_tsne.png",
        "results/figures/figure12_ctgan_correlation.png",
    ]
    for protocol in CTGAN_PROTOCOLS:
        targets += [f"results/balanced/ctgan/{protocol}/{split}.parquet" for split in ("train", "val", "test")]
    return targets


# Used by evaluate.smk.
def evaluation_splits(wildcards):
    """Balanced splits of one balancing and protocol; `none` reads the real splits."""
    if wildcards.balancing == "none":
        folder = "results/splits"
    else:
        folder = f"results/balanced/{wildcards.balancing}/{wildcards.protocol}"
    return {split: f"{folder}/{split}.parquet" for split in ("train", "val", "test")}


# Used by final_targets.
def evaluation_targets():
    """Files of the evaluation stages for rule all."""
    targets = ["results/tables/paper_comparison.md", "results/tables/windowed.csv"]
    for balancing, protocol in EVALUATION_PAIRS:
        targets += [
            f"results/metrics/{balancing}/{protocol}.json",
            f"results/figures/figure13_confusion_{balancing}_{protocol}.png",
        ]
    return targets


# Used by the Snakefile.
def by_capture_config():
    """The configuration of the by_capture module: whole captures per split, by_capture.balancings evaluated."""
    module_config = copy.deepcopy(config)
    module_config["split"]["mode"] = "by_capture"
    module_config["classifiers"]["balancings"] = list(config["by_capture"]["balancings"])
    return module_config


# Used by final_targets.
def by_capture_targets():
    """Files of the by_capture module and the split comparison for rule all; none when by_capture.balancings is empty."""
    if not config["by_capture"]["balancings"] or config["split"]["mode"] == "by_capture":
        return []
    return [
        "results/by_capture/tables/table06_split.csv",
        "results/by_capture/tables/paper_comparison.md",
        "results/by_capture/tables/windowed.csv",
        "results/tables/split_comparison.csv",
    ]


# Used by final_targets.
def fidelity_targets():
    """Files of the fidelity stage for rule all; none when only none is evaluated."""
    generators = [name for name in config["classifiers"]["balancings"] if name != "none"]
    if not generators:
        return []
    return [f"results/fidelity/{generator}.json" for generator in generators] + [
        "results/tables/fidelity.csv",
        "results/tables/fidelity.md",
    ]


# Used by final_targets.
def validation_targets():
    """Files of the validation stage for rule all, one JSON per generator and the table."""
    generators = [name for name in config["classifiers"]["balancings"] if name != "none"]
    if not generators:
        return []
    targets = [f"results/validation/{generator}.json" for generator in generators]
    return targets + ["results/tables/validation.csv", "results/tables/validation.md"]


# Used by report.smk.
def report_inputs():
    """Every target of all except the report, so the report is built last."""
    return final_targets()


def benchmark_patterns(wildcards):
    """Rule name -> benchmark file pattern of every rule with one, so the report times each rule."""
    return {rule.name: str(rule.benchmark) for rule in workflow.rules if rule.benchmark}
