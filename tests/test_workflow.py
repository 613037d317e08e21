"""End-to-end runs of the workflow on a few real captures.

The repository is copied to a temporary folder, as a fresh clone would be,
and the workflow runs there on the reduced configuration with its captures
copied alongside, so the test may touch a capture without changing the
shared data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_CAPTURES = REPO.parent / "shared" / "datasets" / "iot-sentinel" / "captures"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
IGNORED = shutil.ignore_patterns("results", "iot-sentinel", ".snakemake", ".venv", ".git", "__pycache__", ".pytest_cache", "*.egg-info")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_CAPTURES.is_dir(), reason=f"shared captures not found at {SHARED_CAPTURES}"),
]


def copy_test_captures(destination: Path) -> dict:
    """Copy the captures that config/test.yaml selects and return that config."""
    test_config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    dataset = test_config["dataset"]
    for device in dataset["devices"]:
        source = SHARED_CAPTURES / device
        target = destination / device
        target.mkdir(parents=True)
        shutil.copy2(source / "_iotdevice-mac.txt", target)
        captures = sorted(p for p in source.iterdir() if p.suffix == ".pcap")
        for path in captures[: dataset["max_captures_per_device"]]:
            shutil.copy2(path, target)
    return test_config


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = SNAKEMAKE + ["--cores", "2", "--configfile", "config/test.yaml", "local.yaml", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    """A copy of the repository after one full run of the reduced workflow."""
    root = tmp_path_factory.mktemp("workflow")
    workdir = root / "repo"
    shutil.copytree(REPO, workdir, ignore=IGNORED)
    captures = root / "captures"
    test_config = copy_test_captures(captures)
    (workdir / "local.yaml").write_text(yaml.safe_dump({"dataset": {"captures_dir": str(captures)}}))
    run_snakemake(workdir)
    return workdir, captures, test_config


def test_packet_table_and_dictionary(workflow_run):
    workdir, _, test_config = workflow_run
    packets = pd.read_parquet(workdir / "results/features/packets.parquet")
    dictionary = pd.read_csv(workdir / "results/features/feature_dictionary.csv")
    devices = test_config["dataset"]["devices"]

    assert sorted(packets["device"].unique()) == sorted(devices)
    # EdimaxCam1 and EdimaxCam2 merge into one device type.
    assert "EdimaxCam" in set(packets["device_type"])
    assert packets["device_type"].nunique() == len(devices) - 1
    assert packets["capture"].nunique() == len(devices) * test_config["dataset"]["max_captures_per_device"]
    assert list(packets.columns[4:]) == list(dictionary["name"])
    assert set(dictionary["kind"]) == {"continuous", "discrete", "binary", "categorical"}
    assert not packets[list(dictionary["name"])].isna().any().any()


def test_packet_count_matches_raw_source_macs(workflow_run):
    """Count the device's frames with an independent raw reader."""
    workdir, captures, _ = workflow_run
    from scapy.utils import RawPcapReader

    expected = {}
    for device_dir in sorted(captures.iterdir()):
        mac = bytes.fromhex(device_dir.joinpath("_iotdevice-mac.txt").read_text().strip().replace(":", ""))
        for path in sorted(device_dir.glob("*.pcap")):
            expected[f"{device_dir.name}/{path.stem}"] = sum(1 for data, _ in RawPcapReader(str(path)) if data[6:12] == mac)
    packets = pd.read_parquet(workdir / "results/features/packets.parquet")

    assert packets.groupby("capture").size().to_dict() == expected


def test_splits_table06_and_preprocessor(workflow_run):
    workdir, _, _ = workflow_run
    packets = pd.read_parquet(workdir / "results/features/packets.parquet")
    splits = {name: pd.read_parquet(workdir / f"results/splits/{name}.parquet") for name in ("train", "val", "test")}
    table = pd.read_csv(workdir / "results/tables/table06_split.csv")
    preprocessor = json.loads((workdir / "results/preprocess/preprocessor.json").read_text())

    assert sum(len(s) for s in splits.values()) == len(packets)
    for split in splits.values():
        assert set(split["device_type"]) == set(packets["device_type"])
    assert abs(len(splits["train"]) / len(packets) - 0.64) < 0.01
    keys = [pd.MultiIndex.from_frame(s[["capture", "frame"]]) for s in splits.values()]
    assert not keys[0].intersection(keys[1]).size
    assert not keys[0].intersection(keys[2]).size
    assert (workdir / "results/tables/table06_split.md").is_file()
    assert len(table) >= packets["device_type"].nunique()
    assert preprocessor


def test_run_reaches_the_tables(workflow_run):
    workdir, _, test_config = workflow_run
    balancings = test_config["classifiers"]["balancings"]
    summary = pd.read_csv(workdir / "results/tables/classifiers_summary.csv")
    windowed = pd.read_csv(workdir / "results/tables/windowed.csv")

    assert set(summary["balancing"]) == set(balancings)
    assert (workdir / "results/tables/paper_comparison.md").is_file()
    assert (workdir / "results/figures/figure10_class_distribution.png").is_file()
    assert set(windowed["balancing"]) == set(balancings)
    per_packet = windowed[(windowed["k"] == 1) & (windowed["protocol"] == "real_test")]
    merged = per_packet.merge(summary[summary["protocol"] == "real_test"], on=["balancing", "classifier"])
    # k = 1 under real_test scores the same rows as the main tables.
    assert len(merged) == len(per_packet) > 0
    assert (merged["accuracy_x"] - merged["accuracy_y"]).abs().max() < 1e-3


def test_by_capture_run_keeps_captures_whole(workflow_run):
    workdir, _, test_config = workflow_run
    splits = {name: pd.read_parquet(workdir / f"results/by_capture/splits/{name}.parquet")
              for name in ("train", "val", "test")}
    captures = {name: set(frame["capture"]) for name, frame in splits.items()}
    comparison = pd.read_csv(workdir / "results/tables/split_comparison.csv")

    assert not captures["train"] & captures["val"]
    assert not captures["train"] & captures["test"]
    assert not captures["val"] & captures["test"]
    assert set(comparison["balancing"]) == set(test_config["by_capture"]["balancings"])
    assert comparison["macro_f1_by_capture"].between(0, 1).all()
    assert ((comparison["macro_f1_by_capture"] - comparison["macro_f1_stratified"])
            - comparison["macro_f1_difference"]).abs().max() < 1e-3


def test_report_timings_and_by_capture(workflow_run):
    workdir, _, _ = workflow_run
    page = (workdir / "results/report.html").read_text(encoding="utf-8")
    timings = re.search(r'<section id="timings">(.*?)</section>', page, re.S).group(1)
    by_capture = re.search(r'<section id="by-capture">(.*?)</section>', page, re.S).group(1)
    timed_rules = set(re.findall(r"<tr><td>(\w+)</td>", timings))

    # balance, smote_balance and balance_ctgan all write to balance/, and each is timed on its own.
    assert {"balance", "smote_balance", "evaluate", "by_capture_split", "by_capture_evaluate"} <= timed_rules
    assert "report" not in timed_rules
    assert "results/by_capture/tables/classifiers_summary.csv" in by_capture
    assert "results/by_capture/tables/windowed.csv" in by_capture


def job_counts(output: str) -> dict[str, int]:
    """Read the job stats table that ``snakemake -n`` prints."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}


def test_touched_capture_reruns_one_extraction(workflow_run):
    workdir, captures, _ = workflow_run
    capture = sorted((captures / "Aria").glob("*.pcap"))[0]
    os.utime(capture)
    # Snakemake 9 skips inputs that are newer but whose checksum is unchanged;
    # a checksum limit of 0 makes a plain touch count, as with make.
    counts = job_counts(run_snakemake(workdir, "-n", "--max-checksum-file-size", "0").stdout)

    assert counts.get("extract_capture") == 1, counts
    assert counts.get("merge_features") == 1
    assert counts.get("split") == 1
    assert counts.get("preprocess") == 1
    assert counts.get("by_capture_split") == 1


def test_changed_capture_reruns_one_extraction(workflow_run):
    workdir, captures, _ = workflow_run
    capture = sorted((captures / "EdimaxCam1").glob("*.pcap"))[-1]
    capture.chmod(0o644)
    data = capture.read_bytes()
    # Drop the last byte: the capture is now truncated, which extraction handles.
    capture.write_bytes(data[:-1])
    counts = job_counts(run_snakemake(workdir, "-n").stdout)

    assert counts.get("extract_capture") == 1, counts
    assert counts.get("merge_features") == 1


def test_lint_is_clean(workflow_run):
    workdir, _, _ = workflow_run
    result = run_snakemake(workdir, "--lint", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr
