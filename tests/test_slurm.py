"""Run the workflow through profiles/slurm on a real one-node SLURM cluster.

The module fixture starts munged, slurmctld and slurmd on 127.0.0.1 with
tests/slurm/start.sh, which installs Debian's slurmctld, slurmd, slurm-client
and munge when they are missing and writes /etc/slurm/slurm.conf. It stops
exactly the daemons it started, by PID, with tests/slurm/stop.sh, also when a
test fails. Needs root; where the cluster cannot run, the tests are skipped,
or fail when CI=true so that CI never passes without running them.

The cluster tests carry the ``slurm`` marker (``pytest -m slurm``). The
reduced workflow runs twice (through SLURM and locally), so they take
minutes, not seconds. The profile check at the end needs no cluster.
"""

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SLURM_DIR = REPO / "tests" / "slurm"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
LOCAL_PROFILE = REPO / "profiles" / "local" / "config.yaml"
TEST_CONFIG = "config/test.yaml"
CONF_PATH = Path("/etc/slurm/slurm.conf")
CONF_MARKER = "# written by iotsynth tests/slurm/start.sh"
DAEMON_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")

# Seconds between squeue polls in the test runs. The profile's 40 s would add
# about half a minute to each workflow stage. The fixture's MinJobAge must stay
# at least three times this, or the plugin falls back to sacct, which has no
# slurmdbd to ask.
STATUS_INTERVAL_S = 5
MIN_JOB_AGE_S = 3600
TOY_TIMEOUT_S = 300
WORKFLOW_TIMEOUT_S = 1800

# Output folders whose content depends on timing or machine, not on the data.
VOLATILE_PARTS = {"logs", "benchmarks", ".snakemake"}
# Files that record the run itself: the report lists the timings, the paper
# comparison our training times.
VOLATILE_FILES = {"report.html", "tables/paper_comparison.md"}
# What the SLURM run builds: every kind of job (capture extraction, graph,
# constraints, generator training with its GPU resource, classifiers, the
# by_capture module), without the whole of rule all, to keep the test short.
SLURM_TARGETS = [
    "results/constraints/violations/val_summary.csv",
    "results/figures/figure06_feature_graph.png",
    "results/balanced/wgan/real_test/train.parquet",
    "results/metrics/wgan/real_test.json",
    "results/by_capture/metrics/none/real_test.json",
    "results/by_capture/constraints/violations/val_summary.csv",
]
# Names of JSON fields and CSV columns that measure a run instead of the data
# ("seconds", "fit_time", "peak_memory_mb"). Feature columns such as
# flow_duration or dev_time_since_prev do not match.
RUN_MEASUREMENT = re.compile(
    r"seconds|elapsed|runtime|memory|rss|_time$|^time$|_time_s$|time \(s\)|^wall|^created$", re.IGNORECASE
)


@dataclass
class SlurmCluster:
    """The running test cluster: its run folder and its one node."""

    run_dir: Path
    node: str
    cpus: int
    memory_mb: int

    @property
    def controller_log(self) -> Path:
        return self.run_dir / "log" / "slurmctld.log"


def _unavailable_reason() -> str | None:
    """Return why the test cluster cannot start on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root to install SLURM packages and start munged, slurmctld and slurmd"

    if not all(shutil.which(name) for name in DAEMON_BINARIES) and not shutil.which("apt-get"):
        return f"SLURM is not installed and there is no apt-get to install it ({', '.join(DAEMON_BINARIES)})"

    host = socket.gethostname().split(".")[0]
    try:
        address = socket.gethostbyname(host)
    except OSError as error:
        return f"the short hostname {host!r} does not resolve ({error}); the cluster listens on 127.0.0.1 only"
    if not address.startswith("127."):
        return f"the short hostname {host!r} resolves to {address}, not to 127.x; the cluster listens on 127.0.0.1 only"

    if CONF_PATH.exists() and CONF_MARKER not in CONF_PATH.read_text():
        return f"{CONF_PATH} belongs to another SLURM setup; the test cluster would overwrite it"
    return None


def _skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail when CI=true, where the test must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


def _read_node(node: str) -> tuple[int, int]:
    """Return the node's CPU count and memory in MB from ``scontrol show node``."""
    text = subprocess.run(
        ["scontrol", "show", "node", "--oneliner", node],
        check=True, capture_output=True, text=True,
    ).stdout
    fields = dict(re.findall(r"(\S+?)=(\S*)", text))
    return int(fields["CPUTot"]), int(fields["RealMemory"])


def _daemon_pids(run_dir: Path) -> dict[str, int]:
    pids_file = run_dir / "pids"
    if not pids_file.exists():
        return {}
    pairs = (line.split() for line in pids_file.read_text().splitlines() if line.strip())
    return {name: int(pid) for name, pid in pairs}


def _is_running(pid: int, name: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == name
    except OSError:
        return False


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """Start the one-node cluster for this module and stop it afterwards."""
    reason = _unavailable_reason()
    if reason:
        _skip_or_fail(reason)

    run_dir = tmp_path_factory.mktemp("slurm-cluster")
    env = {**os.environ, "MIN_JOB_AGE": str(MIN_JOB_AGE_S)}
    env.pop("SLURM_CONF", None)
    try:
        started = time.monotonic()
        start = subprocess.run(
            ["bash", str(SLURM_DIR / "start.sh"), str(run_dir)],
            env=env, capture_output=True, text=True, timeout=600,
        )
        if start.returncode != 0:
            pytest.fail(f"tests/slurm/start.sh failed with status {start.returncode}:\n{start.stderr}")
        log.info("SLURM test cluster up in %.1f s", time.monotonic() - started)

        node = socket.gethostname().split(".")[0]
        cpus, memory_mb = _read_node(node)
        yield SlurmCluster(run_dir=run_dir, node=node, cpus=cpus, memory_mb=memory_mb)
    finally:
        stop = subprocess.run(
            ["bash", str(SLURM_DIR / "stop.sh"), str(run_dir)],
            capture_output=True, text=True, timeout=300,
        )
        left = {name: pid for name, pid in _daemon_pids(run_dir).items() if _is_running(pid, name)}
        assert stop.returncode == 0, f"tests/slurm/stop.sh failed:\n{stop.stderr}"
        assert not left, f"daemons still running after tests/slurm/stop.sh: {left}"


def _write_test_profile(
    destination: Path, cluster: SlurmCluster, threads: dict | None = None, resources: dict | None = None
) -> Path:
    """Write profiles/slurm/config.yaml, sized for the test node, to ``destination``.

    Only numbers that depend on the machine change: threads are capped at the
    node's CPUs, mem_mb at half the node's memory so two jobs fit at once, and
    the status interval is shortened. ``threads`` and ``resources`` replace
    set-threads and set-resources (for a workflow with other rule names).
    """
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    max_mem_mb = cluster.memory_mb // 2

    profile["slurm-init-seconds-before-status-checks"] = STATUS_INTERVAL_S
    if threads is not None:
        profile["set-threads"] = threads
    if resources is not None:
        profile["set-resources"] = resources

    profile["set-threads"] = {
        rule: min(count, cluster.cpus) for rule, count in profile["set-threads"].items()
    }
    for settings in [profile["default-resources"], *profile["set-resources"].values()]:
        if "mem_mb" in settings:
            settings["mem_mb"] = min(settings["mem_mb"], max_mem_mb)

    destination.mkdir(parents=True, exist_ok=True)
    (destination / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return destination


def _snakemake_env() -> dict[str, str]:
    """Return the environment for a Snakemake run: no SLURM job context, offline LLM backend."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLURM_", "SBATCH_", "SRUN_"))
    }
    # Both runs must take the same constraints path, and CI has no LLM access.
    env.pop("ANTHROPIC_API_KEY", None)
    # As if the user had activated the environment that runs the tests.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run_snakemake(arguments: list[str], workdir: Path, log_path: Path, timeout_s: int) -> float:
    """Run Snakemake in ``workdir`` under ``timeout -s INT``; return the wall time in seconds.

    SIGINT makes Snakemake cancel its SLURM jobs, so a hang fails the test
    instead of holding CI until its own limit.
    """
    command = [
        "timeout", "-s", "INT", "-k", "60", str(timeout_s),
        sys.executable, "-m", "snakemake", *arguments,
    ]
    started = time.monotonic()
    with log_path.open("w") as output:
        result = subprocess.run(
            command, cwd=workdir, env=_snakemake_env(),
            stdout=output, stderr=subprocess.STDOUT, timeout=timeout_s + 120,
        )
    wall_s = time.monotonic() - started

    if result.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-60:])
        reason = "timed out" if result.returncode in (124, 130, 137) else "failed"
        pytest.fail(f"snakemake {reason} (status {result.returncode}) in {workdir}; log {log_path}:\n{tail}")
    return wall_s


def _slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """Return ``scontrol show job`` fields of every job that ran in ``workdir``."""
    text = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        check=True, capture_output=True, text=True,
    ).stdout
    jobs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in text.splitlines() if line.strip()]
    return [job for job in jobs if job.get("WorkDir") == str(workdir)]


def _job_rule(job: dict[str, str]) -> str:
    """Return the rule name that the SLURM executor wrote into the job's comment."""
    match = re.match(r"rule_(.+?)(_wildcards_.*)?$", job.get("Comment", ""))
    assert match, f"SLURM job {job['JobId']} has no Snakemake rule comment: {job.get('Comment')!r}"
    return match.group(1)


def _executed_rules(log_path: Path) -> tuple[list[str], list[str]]:
    """Return the rules Snakemake submitted and those it ran locally, one entry per job."""
    text = log_path.read_text()
    remote = re.findall(r"^rule (\w+):$", text, flags=re.MULTILINE)
    local = re.findall(r"^localrule (\w+):$", text, flags=re.MULTILINE)
    return remote, local


def _submitted_job_ids(cluster: SlurmCluster) -> set[str]:
    """Return the ids of the batch jobs (sbatch) that the controller log records."""
    text = cluster.controller_log.read_text()
    return set(re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text))


def _assert_jobs_went_through_sbatch(cluster: SlurmCluster, workdir: Path, log_path: Path,
                                    ran_all: bool = True) -> list[dict]:
    """Check that every non-local job became one completed SLURM job, and no local one did.

    ``ran_all`` is True when the run built rule all (no explicit targets), which
    must then have run on the submitting machine.
    """
    remote, local = _executed_rules(log_path)
    jobs = _slurm_jobs(workdir)

    assert remote, f"Snakemake submitted no job; see {log_path}"
    if ran_all:
        assert "all" in local, f"rule all did not run locally; see {log_path}"
    assert sorted(_job_rule(job) for job in jobs) == sorted(remote)
    assert {_job_rule(job) for job in jobs}.isdisjoint(local)
    for job in jobs:
        assert job["JobState"] == "COMPLETED", f"SLURM job {job['JobId']} ended {job['JobState']}"
    assert {job["JobId"] for job in jobs} <= _submitted_job_ids(cluster)
    return jobs


def _assert_job_resources(jobs: list[dict], profile_dir: Path) -> None:
    """Check CPUs, memory and time limit of each job against the profile that submitted it."""
    profile = yaml.safe_load((profile_dir / "config.yaml").read_text())
    defaults = profile["default-resources"]
    for job in jobs:
        rule = _job_rule(job)
        settings = {**defaults, **profile["set-resources"].get(rule, {})}
        where = f"SLURM job {job['JobId']} (rule {rule})"
        if rule in profile["set-threads"]:
            assert job["CPUs/Task"] == str(profile["set-threads"][rule]), where
        assert _slurm_megabytes(job["MinMemoryNode"]) == settings["mem_mb"], where
        assert job["TimeLimit"] == _slurm_minutes(settings["runtime"]), where


def _slurm_megabytes(value: str) -> int:
    """Convert a memory size as scontrol prints it (``700M``, ``4G``) to MB."""
    number, unit = re.fullmatch(r"([\d.]+)([MGT])", value).groups()
    return round(float(number) * {"M": 1, "G": 1024, "T": 1024**2}[unit])


def _slurm_minutes(minutes: int) -> str:
    """Format a runtime in minutes as scontrol prints a time limit."""
    hours, minutes = divmod(int(minutes), 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:00"
    return f"{days}-{clock}" if days else clock


@pytest.mark.slurm
def test_sbatch_job_runs_srun_step(slurm_cluster, tmp_path):
    script = tmp_path / "job.sh"
    # Snakemake runs shell commands with `set -u`; read SLURM variables with a default.
    script.write_text("#!/bin/bash\nset -eu\necho \"job ${SLURM_JOB_ID:-none}\"\nsrun -n1 hostname -s\n")
    output = tmp_path / "job.out"

    submitted = subprocess.run(
        ["sbatch", "--wait", "--parsable", f"--output={output}", "--time=2", str(script)],
        capture_output=True, text=True, timeout=120, env=_snakemake_env(),
    )

    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    assert output.read_text().split() == ["job", job_id, slurm_cluster.node]
    assert job_id in _submitted_job_ids(slurm_cluster)


TOY_SNAKEFILE = """\
localrules: all, aggregate

rule all:
    input: "out/summary.txt"

rule work:
    output: "out/part_{i}.txt"
    shell: 'echo "${{SLURM_JOB_ID:-none}} ${{SLURM_CPUS_PER_TASK:-none}} {threads}" > {output}'

rule aggregate:
    input: expand("out/part_{i}.txt", i=range(3))
    output: "out/summary.txt"
    shell: 'cat {input} > {output}; echo "${{SLURM_JOB_ID:-none}}" >> {output}'
"""


@pytest.mark.slurm
def test_toy_workflow_through_slurm_profile(slurm_cluster, tmp_path):
    workdir = tmp_path / "toy"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)
    threads = min(2, slurm_cluster.cpus)
    profile = _write_test_profile(
        tmp_path / "profile", slurm_cluster,
        threads={"work": threads}, resources={"work": {"mem_mb": 700, "runtime": 5}},
    )
    log_path = tmp_path / "snakemake.log"

    _run_snakemake(["--profile", str(profile)], workdir, log_path, TOY_TIMEOUT_S)

    jobs = _assert_jobs_went_through_sbatch(slurm_cluster, workdir, log_path)
    assert len(jobs) == 3
    _assert_job_resources(jobs, profile)
    job_ids = {job["JobId"] for job in jobs}
    for part in sorted((workdir / "out").glob("part_*.txt")):
        job_id, cpus, rule_threads = part.read_text().split()
        assert job_id in job_ids, part
        assert cpus == rule_threads == str(threads), part
    assert (workdir / "out" / "summary.txt").read_text().splitlines()[-1] == "none"


def _copy_repository(destination: Path) -> Path:
    """Copy the repository's tracked and unignored files (what a clone has) to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True,
    )
    if listed.returncode != 0:
        _skip_or_fail(f"cannot list the repository's files with git: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def _config_arguments(workdir: Path) -> list[str]:
    """Return --configfile arguments for the reduced configuration in ``workdir``.

    A relative dataset.captures_dir in config/test.yaml points from the
    repository root, so an overlay makes it absolute for the copy.
    """
    files = [TEST_CONFIG]
    config = yaml.safe_load((workdir / TEST_CONFIG).read_text()) or {}
    captures_dir = (config.get("dataset") or {}).get("captures_dir")
    if captures_dir and not Path(captures_dir).is_absolute():
        overlay = workdir / "config" / "test-absolute-paths.yaml"
        absolute = str((REPO / captures_dir).resolve())
        overlay.write_text(yaml.safe_dump({"dataset": {"captures_dir": absolute}}))
        files.append(str(overlay.relative_to(workdir)))
    return ["--configfile", *files]


def _result_files(workdir: Path) -> dict[str, Path]:
    results = workdir / "results"
    return {
        str(path.relative_to(results)): path
        for path in sorted(results.rglob("*"))
        if path.is_file() and VOLATILE_PARTS.isdisjoint(path.relative_to(results).parts)
        and str(path.relative_to(results)) not in VOLATILE_FILES
    }


def _drop_run_measurements(value):
    """Remove JSON fields that measure the run (seconds, memory) instead of the data."""
    if isinstance(value, dict):
        return {
            key: _drop_run_measurements(item)
            for key, item in value.items()
            if not RUN_MEASUREMENT.search(key)
        }
    if isinstance(value, list):
        return [_drop_run_measurements(item) for item in value]
    return value


def _content_difference(slurm_file: Path, local_file: Path) -> str | None:
    """Return how two result files differ in their data, or None when they match.

    Tables are compared as data frames and JSON as objects. JSON fields and CSV
    columns named like run measurements (RUN_MEASUREMENT) are left out, since
    wall times and memory peaks differ between any two runs. Torch files are
    compared by their tensors, and other files (figures, GraphML) byte for byte.
    """
    if slurm_file.suffix in (".parquet", ".csv"):
        read = pd.read_parquet if slurm_file.suffix == ".parquet" else pd.read_csv
        frames = [read(slurm_file), read(local_file)]
        if slurm_file.suffix == ".csv":
            frames = [frame.drop(columns=[c for c in frame.columns if RUN_MEASUREMENT.search(str(c))]) for frame in frames]
        try:
            pd.testing.assert_frame_equal(*frames)
        except AssertionError as error:
            return str(error)
        return None
    if slurm_file.suffix == ".md" and slurm_file.with_suffix(".csv").is_file():
        # The Markdown twin of a CSV table also lists training times; the
        # CSV comparison above covers its data.
        return None
    if slurm_file.suffix == ".json":
        slurm_data, local_data = (
            _drop_run_measurements(json.loads(path.read_text())) for path in (slurm_file, local_file)
        )
        return None if slurm_data == local_data else "JSON content differs"
    if slurm_file.suffix == ".pt":
        return _tensor_difference(slurm_file, local_file)
    if slurm_file.suffix == ".pkl":
        # NOTE: pickles of fitted scikit-learn objects are not byte-stable
        # between runs, so only their presence is checked. The synthetic
        # tables sampled with them are compared above.
        return None
    return None if slurm_file.read_bytes() == local_file.read_bytes() else "bytes differ"


def _tensors(value, path: str = "") -> dict[str, torch.Tensor]:
    """Return every tensor in a saved torch object, keyed by its path of dict keys and list indices."""
    if torch.is_tensor(value):
        return {path: value}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {}
    found = {}
    for key, item in items:
        found.update(_tensors(item, f"{path}/{key}"))
    return found


def _tensor_difference(slurm_file: Path, local_file: Path) -> str | None:
    """Compare the tensors (weights, optimizer state) of two torch files.

    Their other fields carry run metadata: a checkpoint's fingerprint hashes
    the constraint document, whose ``created`` times differ between runs.
    """
    slurm_tensors, local_tensors = (
        _tensors(torch.load(path, map_location="cpu", weights_only=False)) for path in (slurm_file, local_file)
    )
    if slurm_tensors.keys() != local_tensors.keys():
        return f"different tensors: {sorted(slurm_tensors.keys() ^ local_tensors.keys())}"
    unequal = [key for key in slurm_tensors if not torch.equal(slurm_tensors[key], local_tensors[key])]
    return f"tensors differ: {unequal}" if unequal else None


@pytest.mark.slurm
def test_reduced_workflow_matches_local_run(slurm_cluster, tmp_path, record_property):
    for required in ("Snakefile", TEST_CONFIG):
        if not (REPO / required).exists():
            _skip_or_fail(f"{required} is missing from {REPO}")
    slurm_dir = _copy_repository(tmp_path / "slurm-run")
    local_dir = _copy_repository(tmp_path / "local-run")
    profile = _write_test_profile(tmp_path / "slurm-profile", slurm_cluster)
    slurm_log = tmp_path / "slurm-run.log"
    local_log = tmp_path / "local-run.log"

    slurm_s = _run_snakemake(
        ["--profile", str(profile), *_config_arguments(slurm_dir), "--", *SLURM_TARGETS],
        slurm_dir, slurm_log, WORKFLOW_TIMEOUT_S,
    )
    local_s = _run_snakemake(
        ["--profile", str(LOCAL_PROFILE), "--cores", str(slurm_cluster.cpus), *_config_arguments(local_dir), "--",
         *SLURM_TARGETS],
        local_dir, local_log, WORKFLOW_TIMEOUT_S,
    )
    record_property("slurm_wall_s", round(slurm_s, 1))
    record_property("local_wall_s", round(local_s, 1))
    log.info("reduced workflow: %.1f s through SLURM, %.1f s locally", slurm_s, local_s)

    jobs = _assert_jobs_went_through_sbatch(slurm_cluster, slurm_dir, slurm_log, ran_all=False)
    _assert_job_resources(jobs, profile)
    slurm_files = _result_files(slurm_dir)
    local_files = _result_files(local_dir)
    assert sorted(slurm_files) == sorted(local_files)
    for name in ("features/packets.parquet", "splits/train.parquet", "splits/val.parquet", "splits/test.parquet"):
        assert name in slurm_files, f"results/{name} missing after the SLURM run"
    differences = {
        name: difference
        for name, path in slurm_files.items()
        if (difference := _content_difference(path, local_files[name]))
    }
    assert not differences, f"results of the SLURM and local runs differ: {differences}"


def test_profiles_name_existing_rules():
    if not (REPO / "Snakefile").exists():
        _skip_or_fail(f"Snakefile is missing from {REPO}")
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules", "--configfile", TEST_CONFIG],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=_snakemake_env(),
    )
    assert listed.returncode == 0, listed.stderr
    rules = set(listed.stdout.split())

    for profile_path in (SLURM_PROFILE, LOCAL_PROFILE):
        profile = yaml.safe_load(profile_path.read_text())
        named = set(profile.get("set-threads", {})) | set(profile.get("set-resources", {}))
        # Snakemake ignores unknown rule names here, so a typo would pass silently.
        assert named <= rules, f"{profile_path} names rules the workflow lacks: {sorted(named - rules)}"
