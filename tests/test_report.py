"""Tests of iotsynth.report on a small results folder, and of the page in headless Chromium."""

from __future__ import annotations

import base64
import importlib.metadata
import os
import re
import shutil
import signal
import struct
import subprocess

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from iotsynth.report import (
    NOT_INSTALLED,
    NOT_PRODUCED,
    build_report,
    figure_caption,
    markdown_to_html,
    match_benchmark_files,
    pattern_regex,
    read_benchmarks,
    software_versions,
    summarize_benchmarks,
)

CONFIG = {"seed": 42, "split": {"mode": "stratified", "train": 0.64}, "report": {"title": "Test run"}}
SPLIT_TABLE = (
    "device_type,train,val,test,total\n"
    "Aria,64,16,20,100\n"
    "HueBridge,128,32,40,200\n"
    "total,192,48,60,300\n"
)
SUMMARY_TABLE = (
    "balancing,protocol,classifier,accuracy\n"
    "smote,paper,RF,0.9246\n"
    "<script>alert(1)</script>,paper,NN,0.8123\n"
)
FIDELITY_TABLE = "generator,detection_auc\nwgan,0.7731\n"
# Benchmark file (relative to benchmarks/) -> (s, cpu_time, max_rss). "NA"
# is what Snakemake writes where it could not measure.
BENCHMARKS = {
    "extract_capture/Aria/Setup-A-1-STA.tsv": ("1.50", "0.75", "130.00"),
    "extract_capture/HueBridge/Setup-A-1-STA.tsv": ("2.25", "1.00", "NA"),
    "graph.tsv": ("6.19", "6.06", "656.00"),
}
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
SCREENSHOT_SIZE = (1280, 2400)


def write_png(path, seed):
    """Write a small scatter plot as PNG."""
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(figsize=(3, 2), dpi=60)
    axes.scatter(rng.normal(size=50), rng.normal(size=50))
    figure.savefig(path)
    plt.close(figure)


def write_benchmarks(folder):
    for name, (seconds, cpu, rss) in BENCHMARKS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:01\t{rss}\t300\t80\t90\t0\t0\t20\t{cpu}\n")


def write_packets(folder):
    packets = pd.DataFrame({
        "capture": ["Aria/Setup-A-1-STA"] * 2 + ["HueBridge/Setup-A-1-STA"] * 3 + ["HueBridge/Setup-A-2-STA"],
        "device": ["Aria"] * 2 + ["HueBridge"] * 4,
        "device_type": ["Aria"] * 2 + ["HueBridge"] * 4,
        "frame": [1, 2, 1, 2, 3, 1],
        "pkt_size": [60, 70, 80, 90, 100, 110],
        "is_tcp": [0, 1, 1, 1, 0, 0],
    })
    folder.mkdir(parents=True)
    packets.to_parquet(folder / "packets.parquet", index=False)
    (folder / "skipped_captures.csv").write_text("capture,path,reason\n")
    (folder / "dropped_packets.csv").write_text("reason,frames\nnot_from_device,17\n")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """A results folder with tables, figures, benchmarks and a packet table, but no validation table."""
    folder = tmp_path_factory.mktemp("run") / "results"
    tables = folder / "tables"
    tables.mkdir(parents=True)
    (tables / "table06_split.csv").write_text(SPLIT_TABLE)
    (tables / "table06_split.md").write_text("| device_type | train |\n|:--|--:|\n| Aria | 64 |\n")
    (tables / "classifiers_summary.csv").write_text(SUMMARY_TABLE)
    (tables / "fidelity.csv").write_text(FIDELITY_TABLE)
    (tables / "notes.md").write_text("# Notes\n\nOnly `Markdown` here.\n")
    (tables / "paper_comparison.md").write_text(
        "# Comparison\n\nOurs beside `published`.\n\n"
        "| metric | published | ours |\n|:--|--:|--:|\n| accuracy | 0.9409 | 0.9120 |\n\n"
        "Sources:\n\n- Alyoubi et al., Sensors 25(24):7457, 2025\n"
    )
    figures = folder / "figures"
    figures.mkdir()
    write_png(figures / "figure08_wgan_pca_tsne.png", seed=0)
    write_png(figures / "extra_plot.png", seed=1)
    write_benchmarks(folder / "benchmarks")
    write_packets(folder / "features")
    return folder


@pytest.fixture(scope="module")
def page(results_dir):
    path = build_report(results_dir, CONFIG, results_dir / "report.html", title="Test run", max_table_rows=50)
    return path.read_text(encoding="utf-8")


def section_of(page, anchor):
    """Return the HTML of one section of the page."""
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match is not None, f"section {anchor!r} missing from the page"
    return match.group(1)


def test_report_contains_title(page):
    assert "<title>Test run</title>" in page
    assert "<h1>Test run</h1>" in page


def test_report_renders_each_csv_table(page):
    tables = section_of(page, "tables")

    assert "Rows per device type and split (Table 6)" in tables
    assert "<td>HueBridge</td>" in tables
    assert '<td class="number">192</td>' in tables
    assert "<td>0.9246</td>" not in tables, "numbers should be right-aligned"
    assert '<td class="number">0.9246</td>' in tables


def test_report_escapes_file_text(page):
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_report_lists_markdown_without_csv(page):
    tables = section_of(page, "tables")

    assert "results/tables/notes.md" in tables
    assert "<code>Markdown</code>" in tables
    # table06_split.md has a CSV, so only the CSV is shown.
    assert "results/tables/table06_split.md" not in tables


def test_dedicated_tables_have_own_section(page):
    fidelity = section_of(page, "fidelity")
    tables = section_of(page, "tables")

    assert "detection_auc" in fidelity
    assert "0.7731" in fidelity
    assert "detection_auc" not in tables
    assert "Comparison" not in tables


def test_paper_comparison_markdown_rendered(page):
    comparison = section_of(page, "paper-comparison")

    assert "<th>published</th>" in comparison
    assert '<td class="number">0.9409</td>' in comparison
    assert "<li>Alyoubi et al., Sensors 25(24):7457, 2025</li>" in comparison
    assert "|:--" not in comparison


def test_report_embeds_each_figure(page, results_dir):
    figures = section_of(page, "figures")

    for path in sorted((results_dir / "figures").glob("*.png")):
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in figures, path.name
    assert "PCA and t-SNE of real versus wgan rows" in figures
    assert "extra_plot.png" in figures


def test_report_fetches_nothing(page):
    references = re.findall(r'(?:src|href)="([^"]*)"', page)

    assert references, "the page should have links and images"
    assert all(value.startswith(("data:", "#")) for value in references), references
    assert "<script" not in page
    assert "<link" not in page


def test_report_lists_versions(page):
    software = section_of(page, "software")

    assert "<td>numpy</td>" in software
    assert f"<td>{importlib.metadata.version('numpy')}</td>" in software
    assert "<td>scikit-learn</td>" in software
    assert "<td>python</td>" in software


def test_missing_package_not_installed():
    versions = dict(software_versions(["numpy", "iotsynth-no-such-package"]))

    assert versions["iotsynth-no-such-package"] == NOT_INSTALLED
    assert versions["numpy"] == importlib.metadata.version("numpy")
    assert "python" in versions


def test_report_describes_machine(page):
    machine = section_of(page, "machine")

    assert f"<td>{os.cpu_count():,}</td>" in machine
    assert "CUDA devices" in machine


def test_report_summarizes_dataset(page):
    dataset = section_of(page, "dataset")

    assert "<td>packets (rows)</td><td>6</td>" in dataset
    assert "<td>captures</td><td>3</td>" in dataset
    assert "<td>device types</td><td>2</td>" in dataset
    assert "<td>feature columns</td><td>2</td>" in dataset
    assert "<td>rows in train</td><td>192</td>" in dataset
    assert "<td>frames dropped (not sent by the device)</td><td>17</td>" in dataset


def test_report_shows_configuration(page):
    configuration = section_of(page, "configuration")

    assert "seed: 42" in configuration
    assert "mode: stratified" in configuration


def test_report_shows_timings(page):
    timings = section_of(page, "timings")

    assert "<td>extract_capture</td>" in timings
    # 1.50 + 2.25 wall seconds and 0.75 + 1.00 CPU seconds over two jobs.
    assert '<td>extract_capture</td><td class="number">2</td><td class="number">3.8</td>' in timings
    assert '<td class="number">1.8</td>' in timings
    assert '<td class="number">656.0</td>' in timings


def test_missing_section_says_not_produced(page):
    validation = section_of(page, "validation")

    assert NOT_PRODUCED in validation
    assert "results/tables/validation.csv" in validation


def test_empty_results_every_section_missing(tmp_path):
    results = tmp_path / "results"
    results.mkdir()

    page = build_report(results, CONFIG, tmp_path / "report.html").read_text(encoding="utf-8")

    for anchor in ("dataset", "paper-comparison", "fidelity", "validation", "tables", "figures", "timings"):
        assert NOT_PRODUCED in section_of(page, anchor), anchor
    assert "seed: 42" in section_of(page, "configuration")


def test_long_table_is_cut(tmp_path):
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    rows = "".join(f"row{index},{index}\n" for index in range(30))
    (tables / "long.csv").write_text("name,value\n" + rows)

    page = build_report(tmp_path / "results", CONFIG, tmp_path / "report.html", max_table_rows=10).read_text()

    assert "First 10 of 30 rows" in page
    assert "<td>row9</td>" in page
    assert "<td>row10</td>" not in page


def test_max_table_rows_below_one_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_table_rows"):
        build_report(tmp_path, CONFIG, tmp_path / "report.html", max_table_rows=0)


def test_benchmarks_summed_per_rule(results_dir):
    benchmarks = read_benchmarks(results_dir / "benchmarks")
    summary = summarize_benchmarks(benchmarks).set_index("rule")

    assert summary.loc["extract_capture", "jobs"] == 2
    assert summary.loc["extract_capture", "wall_seconds"] == pytest.approx(3.75)
    assert summary.loc["extract_capture", "cpu_seconds"] == pytest.approx(1.75)
    # The NA of the second capture is skipped, not read as 0.
    assert summary.loc["extract_capture", "peak_max_rss_mb"] == pytest.approx(130.0)
    assert summary.loc["graph", "jobs"] == 1
    assert summary.loc["total", "jobs"] == 3
    assert summary.loc["total", "wall_seconds"] == pytest.approx(9.94)
    assert summary.loc["total", "peak_max_rss_mb"] == pytest.approx(656.0)
    assert list(summary.index[:2]) == ["graph", "extract_capture"], "slowest rule first"


def test_skipped_rule_left_out_of_timings(results_dir, tmp_path):
    page = build_report(results_dir, CONFIG, tmp_path / "report.html", skip_rules=["graph"]).read_text()
    timings = section_of(page, "timings")

    assert "<td>graph</td>" not in timings
    assert "<td>extract_capture</td>" in timings


def test_benchmark_rule_name_column_wins(tmp_path):
    path = tmp_path / "balance" / "smote_paper.tsv"
    path.parent.mkdir()
    path.write_text("s\tmax_rss\tcpu_time\trule_name\n2.0\t100\t1.5\tsmote_balance\n")

    benchmarks = read_benchmarks(tmp_path)

    assert list(benchmarks["rule"]) == ["smote_balance"]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("results/benchmarks/evaluate/{balancing}_{protocol}.tsv", "results/benchmarks/evaluate/wgan_plain_paper.tsv",
         True),
        ("results/benchmarks/graph.tsv", "results/benchmarks/graph.tsv", True),
        ("results/benchmarks/graph.tsv", "results/benchmarksXgraph.tsv", False),
        # A plain wildcard stays within one folder.
        ("results/benchmarks/{name}.tsv", "results/benchmarks/evaluate/wgan_paper.tsv", False),
        ("results/benchmarks/{name,.+}.tsv", "results/benchmarks/evaluate/wgan_paper.tsv", True),
        ("results/benchmarks/train_generator/{generator,wgan|wgan_plain}.tsv",
         "results/benchmarks/train_generator/ctgan.tsv", False),
        ("results/benchmarks/epoch_{n,[0-9]{2}}.tsv", "results/benchmarks/epoch_12.tsv", True),
        ("results/benchmarks/epoch_{n,[0-9]{2}}.tsv", "results/benchmarks/epoch_123.tsv", False),
    ],
)
def test_pattern_regex(pattern, path, matches):
    assert bool(pattern_regex(pattern).fullmatch(path)) is matches


def test_pattern_regex_unbalanced_brace_rejected():
    with pytest.raises(ValueError, match="unbalanced braces"):
        pattern_regex("results/benchmarks/{name.tsv")


def write_benchmark(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:01\t100\t300\t80\t90\t0\t0\t20\t1.0\n")


# Three rules share balance/, and the by_capture module's copies write under results/by_capture/.
SHARED_FOLDER_PATTERNS = {
    "balance": "results/benchmarks/balance/{generator}_{protocol}.tsv",
    "smote_balance": "results/benchmarks/balance/smote_{protocol}.tsv",
    "graph": "results/benchmarks/graph.tsv",
    "by_capture_balance": "results/by_capture/benchmarks/balance/{generator}_{protocol}.tsv",
}


@pytest.fixture
def shared_folder_root(tmp_path):
    for name, seconds in (("results/benchmarks/balance/wgan_paper.tsv", 1.0),
                          ("results/benchmarks/balance/wgan_plain_real_test.tsv", 2.0),
                          ("results/benchmarks/balance/smote_paper.tsv", 4.0),
                          ("results/benchmarks/graph.tsv", 8.0),
                          ("results/by_capture/benchmarks/balance/wgan_paper.tsv", 16.0),
                          ("results/benchmarks/report.tsv", 32.0)):
        write_benchmark(tmp_path / name, seconds)
    return tmp_path


def test_benchmark_file_matched_to_rule(shared_folder_root):
    matched = {path.relative_to(shared_folder_root).as_posix(): rule
               for rule, path in match_benchmark_files(SHARED_FOLDER_PATTERNS, shared_folder_root)}

    assert matched == {
        "results/benchmarks/balance/wgan_paper.tsv": "balance",
        "results/benchmarks/balance/wgan_plain_real_test.tsv": "balance",
        # balance's pattern matches it too, but smote_balance's has more fixed characters.
        "results/benchmarks/balance/smote_paper.tsv": "smote_balance",
        "results/benchmarks/graph.tsv": "graph",
        "results/by_capture/benchmarks/balance/wgan_paper.tsv": "by_capture_balance",
    }, "a file no pattern matches (report.tsv) is left out"


def test_timings_per_rule_from_patterns(shared_folder_root):
    results = shared_folder_root / "results"
    summary = summarize_benchmarks(
        read_benchmarks(results / "benchmarks", SHARED_FOLDER_PATTERNS, root=shared_folder_root)).set_index("rule")

    assert summary.loc["balance", "jobs"] == 2
    assert summary.loc["balance", "wall_seconds"] == pytest.approx(3.0)
    assert summary.loc["smote_balance", "wall_seconds"] == pytest.approx(4.0)
    assert summary.loc["by_capture_balance", "wall_seconds"] == pytest.approx(16.0)
    assert summary.loc["total", "wall_seconds"] == pytest.approx(31.0)


def test_report_times_rules_from_patterns(shared_folder_root, monkeypatch):
    # Snakemake runs the report in the workflow's folder, which the patterns are relative to.
    monkeypatch.chdir(shared_folder_root)
    page = build_report("results", CONFIG, "results/report.html",
                        benchmark_patterns=SHARED_FOLDER_PATTERNS).read_text(encoding="utf-8")
    timings = section_of(page, "timings")

    assert '<td>smote_balance</td><td class="number">1</td><td class="number">4.0</td>' in timings
    assert '<td>by_capture_balance</td><td class="number">1</td><td class="number">16.0</td>' in timings
    assert "<td>report</td>" not in timings


def test_by_capture_section_shows_its_tables_and_figures(tmp_path):
    results = tmp_path / "results"
    (results / "by_capture" / "tables").mkdir(parents=True)
    (results / "by_capture" / "tables" / "windowed.csv").write_text("classifier,window,macro_f1\nRF,13,0.6120\n")
    (results / "by_capture" / "figures").mkdir()
    write_png(results / "by_capture" / "figures" / "figure13_confusion_none_real_test.png", seed=2)

    page = build_report(results, CONFIG, tmp_path / "report.html",
                        by_capture_dir=results / "by_capture").read_text(encoding="utf-8")
    section = section_of(page, "by-capture")

    assert "results/by_capture/tables/windowed.csv" in section
    assert '<td class="number">0.6120</td>' in section
    assert section.count("data:image/png;base64,") == 1
    assert "Confusion matrices of the classifiers, balancing none, protocol real_test" in section
    # The main sections do not pick up the by_capture files.
    assert "0.6120" not in section_of(page, "tables")


def test_by_capture_section_without_a_by_capture_run(page):
    section = section_of(page, "by-capture")

    assert NOT_PRODUCED in section
    assert "by_capture.balancings is empty" in section


@pytest.mark.parametrize(
    ("name", "caption"),
    [
        ("figure06_feature_graph.png", "Feature-relationship graph of the most central features (training split)"),
        ("figure08_wgan_plain_pca_tsne.png", "PCA and t-SNE of real versus wgan_plain rows"),
        ("figure11_ctgan_pca_tsne.png", "PCA and t-SNE of real versus ctgan rows"),
        ("figure09_wgan_correlation.png", "Pearson correlations of real and wgan rows, and their difference"),
        ("figure13_confusion_wgan_plain_real_test.png",
         "Confusion matrices of the classifiers, balancing wgan_plain, protocol real_test"),
        ("ctgan_losses.png", "Training losses of ctgan"),
        ("something_else.png", "something_else.png"),
    ],
)
def test_figure_caption(tmp_path, name, caption):
    assert figure_caption(tmp_path / name) == caption


def test_markdown_table_and_list():
    rendered = markdown_to_html("## Head\n\n| a | b |\n|---|--:|\n| x<y | 2 |\n\n- one `two`\n- three\n\nplain text")

    assert "<h4>Head</h4>" in rendered
    assert "<th>a</th><th>b</th>" in rendered
    assert "<td>x&lt;y</td>" in rendered
    assert "---" not in rendered
    assert "<ul><li>one <code>two</code></li><li>three</li></ul>" in rendered
    assert "<p>plain text</p>" in rendered


# ---------------------------------------------------------------- headless Chromium


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def png_size(path):
    """Return (width, height) from the IHDR chunk of a PNG file."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    return struct.unpack(">II", data[16:24])


def chromium_command(browser, tmp_path, screenshot, url):
    width, height = SCREENSHOT_SIZE
    return [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        f"--screenshot={screenshot}", f"--window-size={width},{height}",
        f"--user-data-dir={tmp_path / 'profile'}",
        # Keep the browser off the network: host names do not resolve, and any
        # connection goes through a proxy on a loopback port where nothing listens.
        "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--no-first-run", "--no-default-browser-check",
        url,
    ]


def run_browser(command, home, timeout):
    """Run Chromium in its own process group and kill that group if it times out."""
    environment = {**os.environ, "HOME": str(home)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Chromium did not finish within {timeout} s: {' '.join(command)}")
    return process.returncode, output.decode("utf-8", "replace")


def test_report_screenshot_in_chromium(tmp_path, results_dir):
    browser = find_chromium()
    if browser is None:
        pytest.skip("needs Chromium as `chromium` or `chromium-browser` on PATH (Debian: apt-get install -y chromium)")
    report = build_report(results_dir, CONFIG, tmp_path / "report.html")
    screenshot = tmp_path / "report.png"

    returncode, output = run_browser(chromium_command(browser, tmp_path, screenshot, report.as_uri()), tmp_path,
                                     timeout=120)

    assert screenshot.is_file(), f"Chromium exited with {returncode} and wrote no screenshot:\n{output[-3000:]}"
    assert png_size(screenshot) == SCREENSHOT_SIZE
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (SCREENSHOT_SIZE[1], SCREENSHOT_SIZE[0])
    # A blank white page has variance 0, and this page gave about 0.014 (Chromium 156).
    assert pixels[..., :3].var() > 1e-3, "the screenshot is blank"
