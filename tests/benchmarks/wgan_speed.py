"""Print seconds per epoch and peak memory of WGAN training on a full-size training split.

Runs the training loop of the train_generator rule (``WGANTrainer``) with
the settings of ``config/config.yaml`` for a few epochs, one variant per
child process so that each peak memory (``ru_maxrss``) is its own. Given
``--results``, it trains on the workflow's outputs in that folder. Otherwise
it trains on a synthetic table of the real split's shape (69,000 rows, 111
features, 177 columns, 27 device types) built by :mod:`iotsynth.gan.toydata`.

    python tests/benchmarks/wgan_speed.py --threads 2 --epochs 3
    python tests/benchmarks/wgan_speed.py --results results --variants wgan

Epoch times vary with other load on the machine: the script prints the load
average before each run, the median epoch after the first, and the process
CPU time per epoch (which includes the first epoch and any spin-waiting of
PyTorch's threads on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_inputs(results: Path | None, rows: int, seed: int):
    """Return ``(x, y, preprocessor, class_names, adjacency, constraints, source)``."""
    from iotsynth.gan.layers import align_adjacency
    from iotsynth.gan.train import training_arrays

    if results is not None:
        from iotsynth.constraints import ConstraintSet
        from iotsynth.graph import load_adjacency
        from iotsynth.preprocess import Preprocessor

        preprocessor = Preprocessor.load(results / "preprocess" / "preprocessor.json")
        constraints = ConstraintSet.load(results / "constraints" / "constraints.json")
        names, weights = load_adjacency(results / "graph" / "adjacency.csv")
        train = pd.read_parquet(results / "splits" / "train.parquet")
        source = f"workflow outputs in {results}"
    else:
        from iotsynth.gan.toydata import build_inputs, make_packet_table

        train, dictionary = make_packet_table(rows, n_device_types=27, seed=seed, extra_continuous=5,
                                              extra_discrete=42, extra_binary=33, extra_categorical=20)
        inputs = build_inputs(train, dictionary)
        preprocessor, constraints, names, weights = (inputs.preprocessor, inputs.constraints, inputs.names,
                                                     inputs.adjacency)
        source = "synthetic table (iotsynth.gan.toydata)"
    x, y = training_arrays(train, preprocessor, constraints.device_types)
    adjacency = align_adjacency(names, weights, preprocessor.layout_)
    return x, y, preprocessor, constraints.device_types, adjacency, constraints, source


def run_variant(args: argparse.Namespace) -> dict:
    """Train one variant in this process and return its measurements."""
    from iotsynth.gan.settings import WGANSettings
    from iotsynth.gan.train import WGANTrainer

    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    section = dict(config["wgan"], epochs=args.epochs, device="cpu")
    settings = WGANSettings.from_config(section, args.variant)

    x, y, preprocessor, class_names, adjacency, constraints, source = _load_inputs(args.results, args.rows, args.seed)
    load = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer = WGANTrainer(settings, preprocessor, class_names, adjacency, constraints, seed=args.seed,
                          progress=False).fit(x, y)
    cpu_seconds = time.process_time() - cpu_started
    seconds = trainer.losses_["seconds"].tolist()
    return {
        "variant": args.variant,
        "source": source,
        "rows": int(len(x)),
        "columns": int(x.shape[1]),
        "device_types": len(class_names),
        "threads": args.threads,
        "epoch_seconds": seconds,
        "median_after_first": statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0],
        "wall_seconds": time.perf_counter() - started,
        "cpu_seconds_per_epoch": cpu_seconds / args.epochs,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average_at_start": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per variant (default 3)")
    parser.add_argument("--variants", default="wgan_plain,wgan", help="comma-separated keys of wgan.variants")
    parser.add_argument("--results", type=Path, default=None,
                        help="results folder with splits, preprocess, graph and constraints (default: synthetic table)")
    parser.add_argument("--rows", type=int, default=69000, help="rows of the synthetic table (default 69000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    results = []
    for variant in args.variants.split(","):
        command = [sys.executable, __file__, "--variant", variant, "--threads", str(args.threads),
                   "--epochs", str(args.epochs), "--rows", str(args.rows), "--seed", str(args.seed)]
        if args.results is not None:
            command += ["--results", str(args.results)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))

    first = results[0]
    print(f"data:     {first['source']}: {first['rows']} rows, {first['columns']} columns, "
          f"{first['device_types']} device types; {first['threads']} threads; CPU: {os.cpu_count()} cores")
    for result in results:
        epochs = ", ".join(f"{value:.2f}" for value in result["epoch_seconds"])
        print(f"{result['variant']:<12} s/epoch (median after the first): {result['median_after_first']:.2f}  "
              f"[{epochs}]  CPU s/epoch {result['cpu_seconds_per_epoch']:.2f}  "
              f"peak memory {result['peak_memory_mib']:.0f} MiB  "
              f"load average at start {result['load_average_at_start']:.2f}")
    if len(results) > 1:
        base = results[0]["median_after_first"]
        for result in results[1:]:
            print(f"{result['variant']} / {results[0]['variant']}: {result['median_after_first'] / base:.2f}")


if __name__ == "__main__":
    main()
