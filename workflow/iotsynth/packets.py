"""Writing per-capture packet tables and merging them into one.

Each extraction job writes a Parquet table and a JSON report (packets kept,
frames dropped per reason, skip reason, seconds). The merge concatenates the
tables, writes the feature dictionary and turns the reports into
``skipped_captures.csv`` and ``dropped_packets.csv``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from iotsynth import features as F
from iotsynth.captures import Capture
from iotsynth.extract import MacAddressError, extract_capture, format_mac, parse_mac, read_mac_file

log = logging.getLogger(__name__)


class SkippedCaptureError(RuntimeError):
    """A capture was skipped while ``dataset.strict`` is true."""


def extract_to_files(
    capture: Capture,
    parquet_path: str | Path,
    report_path: str | Path,
    strict: bool = False,
) -> dict:
    """Extract one capture and write its packet table and report.

    The table always contains every feature. The merge drops the
    session-identifying ones when asked, so switching that setting does not
    rerun the extraction.

    Parameters
    ----------
    capture : Capture
        The capture and its labels.
    parquet_path, report_path : str or pathlib.Path
        Output files.
    strict : bool
        Raise :class:`SkippedCaptureError` instead of writing an empty table
        when the capture is skipped.

    Returns
    -------
    dict
        The report written to ``report_path``.
    """
    selected = F.FEATURES
    started = time.perf_counter()
    try:
        mac = parse_mac(capture.mac, f"MAC of {capture.capture_id}") if capture.mac else read_mac_file(capture.mac_file)
    except MacAddressError as error:
        result = None
        skipped = str(error)
    else:
        result = extract_capture(capture.path, mac, selected)
        skipped = None if result.skipped is None else f"{capture.path}: {result.skipped}"

    report = {
        "capture": capture.capture_id,
        "device": capture.device,
        "device_type": capture.device_type,
        "path": capture.path,
        "mac": None if result is None else format_mac(mac),
        "packets": 0 if result is None else result.n_packets,
        "dropped": {} if result is None else dict(sorted(result.dropped.items())),
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if skipped is not None:
        log.warning("skipped capture %s: %s", capture.capture_id, skipped)
        if strict:
            raise SkippedCaptureError(f"{skipped} (dataset.strict is true; set it to false to skip such captures)")
    else:
        log.info(
            "%s: %d packets from the device, %d frames dropped %s, %.2f s",
            capture.capture_id, result.n_packets, sum(result.dropped.values()), report["dropped"], report["seconds"],
        )

    n = 0 if result is None or skipped else result.n_packets
    columns = {
        "capture": pa.array([capture.capture_id] * n, pa.string()),
        "device": pa.array([capture.device] * n, pa.string()),
        "device_type": pa.array([capture.device_type] * n, pa.string()),
        "frame": pa.array(result.frames if n else [], pa.int64()),
    }
    for feature in selected:
        dtype = pa.float64() if feature.kind == "continuous" else pa.int64()
        columns[feature.name] = pa.array(result.columns[feature.name] if n else [], dtype)
    Path(parquet_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), parquet_path)
    Path(report_path).write_text(json.dumps(report, indent=1) + "\n")
    return report


def merge_captures(
    parquet_paths: list[str],
    report_paths: list[str],
    packets_path: str | Path,
    dictionary_path: str | Path,
    skipped_path: str | Path,
    dropped_path: str | Path,
    session_identifying: str = "keep",
) -> None:
    """Concatenate per-capture tables and summarise what was skipped and dropped."""
    import pandas as pd

    selected = F.selected_features(session_identifying)
    tables = [pq.read_table(path) for path in parquet_paths]
    expected = list(F.METADATA_COLUMNS) + [f.name for f in F.FEATURES]
    for path, table in zip(parquet_paths, tables):
        if table.column_names != expected:
            raise ValueError(
                f"{path}: columns differ from the current feature set; "
                "delete results/features/captures/ and rerun the extraction"
            )
    keep = list(F.METADATA_COLUMNS) + [f.name for f in selected]
    merged = pa.concat_tables(tables).select(keep)
    pq.write_table(merged, packets_path)

    reports = [json.loads(Path(path).read_text()) for path in report_paths]
    skipped = pd.DataFrame(
        [{"capture": r["capture"], "path": r["path"], "reason": r["skipped"]} for r in reports if r["skipped"]],
        columns=["capture", "path", "reason"],
    )
    skipped.to_csv(skipped_path, index=False)

    dropped: dict[str, int] = {}
    for report in reports:
        for reason, count in report["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    pd.DataFrame(sorted(dropped.items()), columns=["reason", "frames"]).to_csv(dropped_path, index=False)
    F.feature_dictionary(selected).to_csv(dictionary_path, index=False)

    device_types = merged.column("device_type").unique().to_pylist()
    log.info(
        "merged %d captures: %d packets, %d device types, %d features; %d captures skipped; dropped frames %s",
        len(tables), merged.num_rows, len(device_types), len(selected), len(skipped), dropped,
    )
    for row in skipped.itertuples():
        log.warning("skipped %s: %s", row.capture, row.reason)
