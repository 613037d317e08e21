"""Print the wall time and packets per second of extracting a folder of captures.

Runs the same extraction function as the workflow's extract_capture rule, in
a pool of worker processes, without Snakemake's per-job start-up cost.

    python tests/benchmarks/extract_speed.py ../shared/datasets/iot-sentinel/captures --workers 2
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

from iotsynth.captures import from_folder
from iotsynth.extract import extract_capture, read_mac_file


def _extract(capture):
    started = time.perf_counter()
    result = extract_capture(capture.path, read_mac_file(capture.mac_file))
    return capture.capture_id, result.n_packets, result.dropped, result.skipped, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures_dir", help="folder in the IoT Sentinel layout")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()

    captures = from_folder(args.captures_dir, {})
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_extract, captures, chunksize=4))
    wall = time.perf_counter() - started

    packets = sum(r[1] for r in results)
    dropped = sum((r[2] for r in results), Counter())
    frames = packets + sum(dropped.values())
    skipped = [r for r in results if r[3]]
    print(f"captures:          {len(captures)} ({len(skipped)} skipped)")
    print(f"device packets:    {packets}")
    print(f"frames read:       {frames}")
    print(f"dropped frames:    {dict(dropped)}")
    print(f"workers:           {args.workers} (of {os.cpu_count()} CPUs)")
    print(f"wall time:         {wall:.1f} s")
    print(f"device packets/s:  {packets / wall:,.0f}")
    print(f"frames/s:          {frames / wall:,.0f}")


if __name__ == "__main__":
    main()
