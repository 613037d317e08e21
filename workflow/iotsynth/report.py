"""Build the results report: one self-contained HTML page of a run (rule report).

The page gathers the merged configuration, software versions, the machine,
a dataset summary, every table under ``results/tables/``, every figure under
``results/figures/``, the tables and figures of the by_capture run and the
Snakemake benchmark timings of every rule. Figures are
embedded as base64 data URIs and the style sheet is inline, so the file opens
offline, needs no JavaScript and fetches nothing. Every string read from a
file or the configuration is escaped with :func:`html.escape`. A section
whose files are absent shows "not produced in this run" instead of failing,
so the report also works on a partial run.
"""

from __future__ import annotations

import base64
import csv
import html
import importlib.metadata
import logging
import os
import platform
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

logger = logging.getLogger(__name__)

NOT_PRODUCED = "not produced in this run"
NOT_INSTALLED = "not installed"
# Distribution names as pip and importlib.metadata know them, in display order.
SOFTWARE_PACKAGES = (
    "snakemake", "torch", "scikit-learn", "pandas", "numpy", "scapy", "ctgan",
    "imbalanced-learn", "anthropic", "iotsynth",
)
# Identifier columns of the packet table. Every other column is a feature.
PACKET_ID_COLUMNS = ("capture", "device", "device_type", "frame")
SPLIT_NAMES = ("train", "val", "test")
# Table stems that have a section of their own, so the tables section skips them.
DEDICATED_TABLES = ("paper_comparison", "fidelity", "validation")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
# Figure file name (without suffix) -> caption, where the named groups fill
# the placeholders. The first pattern that matches wins, and other names get
# their file name.
FIGURE_CAPTIONS = (
    (r"figure06_feature_graph", "Feature-relationship graph of the most central features (training split)"),
    (r"figure(?:08|11)_(?P<generator>.+)_pca_tsne", "PCA and t-SNE of real versus {generator} rows"),
    (r"figure(?:09|12)_(?P<generator>.+)_correlation",
     "Pearson correlations of real and {generator} rows, and their difference"),
    (r"figure10_class_distribution", "Rows per device type in each split before and after balancing (protocol paper)"),
    (r"figure13_confusion_(?P<balancing>.+)_(?P<protocol>paper|real_test)",
     "Confusion matrices of the classifiers, balancing {balancing}, protocol {protocol}"),
    (r"(?P<generator>.+)_losses", "Training losses of {generator}"),
)
# Table file stem -> heading, the same way. Tables 6 to 8 are those of
# Alyoubi et al., Sensors 25(24):7457, 2025.
TABLE_CAPTIONS = (
    (r"table06_split", "Rows per device type and split (Table 6)"),
    (r"table07_wgan", "Classifiers on WGAN-balanced data, protocol paper (Table 7)"),
    (r"table08_smote", "Classifiers on SMOTE-balanced data, protocol paper (Table 8)"),
    (r"classifiers_summary", "Every classifier run, with macro-F1, balanced accuracy and row counts"),
    (r"classifiers_(?P<balancing>.+)_(?P<protocol>paper|real_test)",
     "Classifiers, balancing {balancing}, protocol {protocol}"),
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
tr:nth-child(even) td { background: #f8f8f8; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
.missing { color: #a00; font-style: italic; }
.note { color: #555; font-size: 0.9em; }
"""


@dataclass(frozen=True)
class Section:
    """One section of the report: an anchor id, a heading and its HTML body."""

    anchor: str
    title: str
    body: str


def build_report(
    results_dir: str | Path,
    config: Mapping,
    output_path: str | Path,
    *,
    title: str = "iotsynth results",
    max_table_rows: int = 200,
    skip_rules: Sequence[str] = (),
    benchmark_patterns: Mapping[str, str] | None = None,
    by_capture_dir: str | Path | None = None,
) -> Path:
    """Write the results report of one run as a self-contained HTML file.

    Parameters
    ----------
    results_dir : str or pathlib.Path
        The run's results folder (``results/``). Only read.
    config : mapping
        The merged configuration of the run, shown as YAML.
    output_path : str or pathlib.Path
        HTML file to write (``results/report.html``). Missing parent folders
        are created.
    title : str, default "iotsynth results"
        Page title and top heading.
    max_table_rows : int, default 200
        Rows shown per table. A longer table shows its first rows and names
        the file that contains the rest.
    skip_rules : sequence of str, default ()
        Rules left out of the timings. The report rule passes its own name,
        because its benchmark file is written after the page, so a file found
        while the page is built is left over from an earlier run.
    benchmark_patterns : mapping of str to str, optional
        Rule name -> benchmark file pattern relative to the current folder.
        The timings then count each file for its own rule, including the
        by_capture run's. Without it they read ``results/benchmarks/`` and
        name a rule by its folder there.
    by_capture_dir : str or pathlib.Path, optional
        Results folder of the by_capture run (``results/by_capture/``), whose
        tables and figures get a section of their own. None when the run has
        no by_capture part; the section then reports that.

    Returns
    -------
    pathlib.Path
        ``output_path``.

    Raises
    ------
    ValueError
        If ``max_table_rows`` is below 1.
    """
    if max_table_rows < 1:
        raise ValueError(
            f"invalid max_table_rows {max_table_rows}: it must be at least 1 (config key report.max_table_rows)"
        )
    started = time.perf_counter()
    results_dir = Path(results_dir)
    output_path = Path(output_path)

    # The long configuration goes last, after the results.
    sections = [
        software_section(),
        machine_section(),
        dataset_section(results_dir),
        paper_comparison_section(results_dir, max_table_rows),
        named_table_section(results_dir, "fidelity", "Fidelity of the synthetic rows", max_table_rows),
        named_table_section(results_dir, "validation", "LLM validation of the synthetic rows", max_table_rows),
        tables_section(results_dir, max_table_rows),
        figures_section(results_dir),
        by_capture_section(by_capture_dir, results_dir, max_table_rows),
        timings_section(results_dir, skip_rules, benchmark_patterns),
        configuration_section(config),
    ]
    page = render_page(title, sections, results_dir)

    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(page, encoding="utf-8")
    missing = [section.title for section in sections if NOT_PRODUCED in section.body]
    logger.info("wrote %s (%.1f MB) in %.1f s; sections with missing parts: %s", output_path,
                len(page.encode("utf-8")) / 1e6, time.perf_counter() - started, ", ".join(missing) or "none")
    return output_path


# ---------------------------------------------------------------- page layout


def render_page(title: str, sections: Sequence[Section], results_dir: Path) -> str:
    """Return the whole HTML document: head with inline style, contents list and sections."""
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    contents = "".join(f'<li><a href="#{section.anchor}">{escape(section.title)}</a></li>' for section in sections)
    body = "\n".join(
        f'<section id="{section.anchor}">\n<h2>{escape(section.title)}</h2>\n{section.body}\n</section>'
        for section in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="note">Built {escape(generated)} from {escape(str(results_dir))}.</p>\n'
        f"<nav><ul>{contents}</ul></nav>\n{body}\n</body>\n</html>\n"
    )


def escape(value: object) -> str:
    """Return ``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def missing_paragraph(results_dir: Path, *paths: Path) -> str:
    """Return the "not produced in this run" paragraph, naming the files looked for."""
    names = ", ".join(escape(relative_name(path, results_dir)) for path in paths)
    return f'<p class="missing">{NOT_PRODUCED} ({names} not found).</p>'


def html_table(header: Sequence[object], rows: Sequence[Sequence[object]], align_numbers: bool = True) -> str:
    """Return an HTML table. With ``align_numbers``, cells that parse as numbers are right-aligned."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    lines = []
    for row in rows:
        cells = "".join(
            f'<td class="number">{escape(cell)}</td>' if align_numbers and is_number(cell)
            else f"<td>{escape(cell)}</td>"
            for cell in row
        )
        lines.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(lines) + \
        "\n</tbody></table></div>"


def is_number(cell: object) -> bool:
    """Return whether a cell's text is a number (``float`` accepts it, ``nan`` and ``inf`` included)."""
    try:
        float(str(cell))
    except ValueError:
        return False
    return True


def key_value_table(items: Sequence[tuple[str, object]]) -> str:
    """Return a two-column table of names and values, with thousands separators in integers."""
    rows = [
        (name, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value)
        for name, value in items
    ]
    return html_table(("item", "value"), rows, align_numbers=False)


# ------------------------------------------------------- configuration, software, machine


def configuration_section(config: Mapping) -> Section:
    """Show the merged configuration as YAML."""
    text = yaml.safe_dump(plain_data(config), sort_keys=False, allow_unicode=True)
    body = ('<p>The merged configuration of this run (config/config.yaml with every override applied).</p>\n'
            f"<pre>{escape(text)}</pre>")
    return Section("configuration", "Run configuration", body)


def plain_data(value: object) -> object:
    """Convert mappings and sequences to dicts and lists so that ``yaml.safe_dump`` accepts them."""
    if isinstance(value, Mapping):
        return {str(key): plain_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def software_versions(packages: Sequence[str] = SOFTWARE_PACKAGES) -> list[tuple[str, str]]:
    """Return (name, version) for Python and each package, with "not installed" for absent ones."""
    versions = [("python", platform.python_version())]
    for name in packages:
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, NOT_INSTALLED))
    return versions


def software_section() -> Section:
    """Show the Python and package versions of the environment that builds the report."""
    body = ("<p>Versions in the environment that built this report (the rules of one run share "
            "that environment unless they run under different conda environments).</p>\n"
            + key_value_table(software_versions()))
    return Section("software", "Software versions", body)


def cuda_description() -> str:
    """Return the names of the CUDA devices that torch finds, or why there are none."""
    try:
        import torch
    except ImportError:
        return f"unknown (torch {NOT_INSTALLED})"
    if not torch.cuda.is_available():
        return "none"
    return ", ".join(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))


def memory_gib() -> str:
    """Return the physical memory in GiB, or "unknown" where ``os.sysconf`` cannot tell (Windows)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return "unknown"
    return f"{total / 2**30:.1f}"


def machine_section() -> Section:
    """Show CPU count, memory, platform and CUDA devices of the machine that builds the report."""
    items = [
        ("CPU count", os.cpu_count() or "unknown"),
        ("memory (GiB)", memory_gib()),
        ("platform", platform.platform()),
        ("CUDA devices", cuda_description()),
    ]
    body = ("<p>The machine that built this report. Jobs sent to a cluster ran elsewhere, "
            "and their benchmark files below are the record of their cost.</p>\n" + key_value_table(items))
    return Section("machine", "Machine", body)


# ---------------------------------------------------------------- dataset


def packet_table_summary(path: Path) -> list[tuple[str, object]]:
    """Summarise the packet table from its metadata and its three identifier columns."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    summary_columns = [name for name in ("capture", "device", "device_type") if name in names]
    columns = parquet.read(columns=summary_columns) if summary_columns else None
    items: list[tuple[str, object]] = [
        ("packets (rows)", parquet.metadata.num_rows),
        ("feature columns", sum(name not in PACKET_ID_COLUMNS for name in names)),
    ]
    for name, label in (("capture", "captures"), ("device", "device folders"), ("device_type", "device types")):
        if name in summary_columns:
            items.append((label, len(columns.column(name).unique())))
    return items


def csv_row_count(path: Path) -> int:
    """Return the number of data rows of a CSV file with a header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def split_row_counts(results_dir: Path) -> list[tuple[str, object]] | None:
    """Return rows per split from Table 6's total row, or from the split files' metadata."""
    table = results_dir / "tables" / "table06_split.csv"
    if table.is_file():
        frame = pd.read_csv(table)
        total = frame[frame.iloc[:, 0].astype(str) == "total"]
        if not total.empty and all(name in frame.columns for name in SPLIT_NAMES):
            return [(f"rows in {name}", int(total.iloc[0][name])) for name in SPLIT_NAMES]
    paths = [results_dir / "splits" / f"{name}.parquet" for name in SPLIT_NAMES]
    if all(path.is_file() for path in paths):
        return [(f"rows in {name}", pq.ParquetFile(path).metadata.num_rows) for name, path in zip(SPLIT_NAMES, paths)]
    return None


def dataset_section(results_dir: Path) -> Section:
    """Summarise captures, device types, packets and rows per split."""
    packets = results_dir / "features" / "packets.parquet"
    if not packets.is_file():
        return Section("dataset", "Dataset", missing_paragraph(results_dir, packets))
    items = packet_table_summary(packets)

    skipped = results_dir / "features" / "skipped_captures.csv"
    if skipped.is_file():
        items.append(("captures skipped", csv_row_count(skipped)))
    dropped = results_dir / "features" / "dropped_packets.csv"
    if dropped.is_file():
        frame = pd.read_csv(dropped)
        if "frames" in frame.columns:
            items.append(("frames dropped (not sent by the device)", int(frame["frames"].sum())))

    splits = split_row_counts(results_dir)
    body = key_value_table(items + (splits or []))
    if splits is None:
        body += missing_paragraph(results_dir, results_dir / "tables" / "table06_split.csv", results_dir / "splits")
    return Section("dataset", "Dataset", body)


# ---------------------------------------------------------------- tables


def read_csv_cells(path: Path) -> tuple[list[str], list[list[str]]]:
    """Read a CSV file as text cells, so numbers keep the digits the stage wrote."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return [], []
    return rows[0], rows[1:]


def table_heading(path: Path, results_dir: Path) -> str:
    """Return an ``<h3>`` with the table's caption from ``TABLE_CAPTIONS`` and its file name."""
    name = escape(relative_name(path, results_dir))
    caption = caption_for(path.stem, TABLE_CAPTIONS)
    if caption is None:
        return f"<h3>{name}</h3>"
    return f'<h3>{escape(caption)}</h3>\n<p class="note"><code>{name}</code></p>'


def csv_table_html(path: Path, results_dir: Path, max_rows: int) -> str:
    """Render a CSV file as a table under its heading, cut to its first ``max_rows`` rows."""
    header, rows = read_csv_cells(path)
    heading = table_heading(path, results_dir)
    if not header:
        return f'{heading}\n<p class="note">empty file</p>'
    note = ""
    if len(rows) > max_rows:
        note = f'<p class="note">First {max_rows} of {len(rows)} rows; the file holds all of them.</p>\n'
        rows = rows[:max_rows]
    return f"{heading}\n{note}{html_table(header, rows)}"


def published_first(path: Path, prefix: str) -> tuple[bool, str]:
    """Sort key that puts the numbered ``<prefix>NN_*`` files, which stand for published ones, first."""
    return (not re.match(rf"{prefix}\d", path.name), path.name)


def relative_name(path: Path, results_dir: Path) -> str:
    """Return ``path`` relative to the results folder's parent (``results/tables/...``)."""
    try:
        return str(path.relative_to(results_dir.parent))
    except ValueError:
        return str(path)


def markdown_file_html(path: Path, results_dir: Path) -> str:
    """Render a Markdown file under a heading that names it."""
    text = path.read_text(encoding="utf-8")
    return f"{table_heading(path, results_dir)}\n{markdown_to_html(text)}"


def table_file_html(stem: Path, results_dir: Path, max_rows: int) -> str | None:
    """Render ``<stem>.csv``, or ``<stem>.md`` where there is no CSV, or return None when neither exists."""
    csv_path, markdown_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    if csv_path.is_file():
        return csv_table_html(csv_path, results_dir, max_rows)
    if markdown_path.is_file():
        return markdown_file_html(markdown_path, results_dir)
    return None


def paper_comparison_section(results_dir: Path, max_rows: int) -> Section:
    """Show the comparison with the published values: the Markdown page, else its CSV."""
    stem = results_dir / "tables" / "paper_comparison"
    markdown_path = stem.with_suffix(".md")
    # The Markdown page carries the notes and sources around the table.
    if markdown_path.is_file():
        body = markdown_file_html(markdown_path, results_dir)
    else:
        csv_path = stem.with_suffix(".csv")
        body = table_file_html(stem, results_dir, max_rows) or missing_paragraph(results_dir, markdown_path, csv_path)
    return Section("paper-comparison", "Comparison with the published results", body)


def named_table_section(results_dir: Path, stem_name: str, title: str, max_rows: int) -> Section:
    """Show ``results/tables/<stem_name>.csv`` (or ``.md``) in a section of its own."""
    stem = results_dir / "tables" / stem_name
    body = table_file_html(stem, results_dir, max_rows)
    if body is None:
        body = missing_paragraph(results_dir, stem.with_suffix(".csv"))
    return Section(stem_name, title, body)


def tables_section(results_dir: Path, max_rows: int) -> Section:
    """Show every CSV table under ``results/tables/`` and every Markdown table without a CSV."""
    return Section("tables", "Tables", tables_html(results_dir / "tables", results_dir, max_rows, DEDICATED_TABLES))


def tables_html(folder: Path, results_dir: Path, max_rows: int, skip: Sequence[str] = ()) -> str:
    """Render every CSV table in ``folder`` and every Markdown table without a CSV, numbered tables first."""
    if not folder.is_dir():
        return missing_paragraph(results_dir, folder)
    stems = sorted({path.with_suffix("") for path in folder.iterdir() if path.suffix in (".csv", ".md")},
                   key=lambda stem: published_first(stem, "table"))
    parts = [table_file_html(stem, results_dir, max_rows) for stem in stems if stem.name not in skip]
    if not parts:
        return missing_paragraph(results_dir, folder / "*.csv")
    logger.info("rendered %d tables from %s", len(parts), folder)
    return "\n".join(parts)


def markdown_to_html(text: str) -> str:
    """Render the Markdown that the stages write: headings, pipe tables, lists and paragraphs.

    Inline code in backticks becomes ``<code>``, and other inline syntax stays
    as text. Blocks are separated by blank lines.
    """
    # NOTE: a subset of Markdown. Escaped pipes inside table cells, nested
    # lists and emphasis are shown as written.
    parts = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        while lines and lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")) + 2, 6)
            parts.append(f"<h{level}>{inline_markdown(lines[0].lstrip('#').strip())}</h{level}>")
            lines = lines[1:]
        if lines:
            parts.append(markdown_block_html(lines))
    return "\n".join(parts)


def markdown_block_html(lines: list[str]) -> str:
    """Render one Markdown block without headings: a pipe table, a list or a paragraph."""
    if all(line.lstrip().startswith("|") for line in lines):
        rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
        # The second line of a pipe table is the alignment row (|:---|---:|).
        body = [row for index, row in enumerate(rows[1:], start=1)
                if not (index == 1 and all(re.fullmatch(r":?-+:?", cell) for cell in row))]
        return html_table(rows[0], body)
    if all(re.match(r"\s*[-*] ", line) for line in lines):
        texts = [re.sub(r"^\s*[-*] ", "", line) for line in lines]
        items = "".join(f"<li>{inline_markdown(text)}</li>" for text in texts)
        return f"<ul>{items}</ul>"
    return f"<p>{inline_markdown(' '.join(line.strip() for line in lines))}</p>"


def inline_markdown(text: str) -> str:
    """Escape text and turn `code` spans into ``<code>`` elements."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


# ---------------------------------------------------------------- figures


def caption_for(stem: str, captions: Sequence[tuple[str, str]]) -> str | None:
    """Return the caption of the first pattern that matches ``stem`` in full, or None."""
    for pattern, template in captions:
        match = re.fullmatch(pattern, stem)
        if match:
            return template.format(**match.groupdict())
    return None


def figure_caption(path: Path) -> str:
    """Return the caption of a figure file from ``FIGURE_CAPTIONS``, or its file name."""
    return caption_for(path.stem, FIGURE_CAPTIONS) or path.name


def figure_html(path: Path, results_dir: Path) -> str:
    """Return a ``<figure>`` with the image embedded as a base64 data URI."""
    media_type = IMAGE_TYPES[path.suffix.lower()]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = figure_caption(path)
    return (
        f'<figure><img src="data:{media_type};base64,{data}" alt="{escape(caption)}">\n'
        f"<figcaption>{escape(caption)} <code>{escape(relative_name(path, results_dir))}</code>"
        "</figcaption></figure>"
    )


def figures_section(results_dir: Path) -> Section:
    """Embed every PNG, JPEG and SVG figure under ``results/figures/``."""
    return Section("figures", "Figures", figures_html(results_dir / "figures", results_dir))


def figures_html(folder: Path, results_dir: Path) -> str:
    """Embed every PNG, JPEG and SVG figure below ``folder``, numbered figures first."""
    paths = []
    if folder.is_dir():
        paths = sorted((path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_TYPES),
                       key=lambda path: published_first(path, "figure"))
    if not paths:
        return missing_paragraph(results_dir, folder / "*.png")
    logger.info("embedded %d figures from %s", len(paths), folder)
    return "\n".join(figure_html(path, results_dir) for path in paths)


def by_capture_section(by_capture_dir: str | Path | None, results_dir: Path, max_rows: int) -> Section:
    """Show the tables and figures of the by_capture run, where every capture lies whole in one split."""
    title = "Unseen captures (by_capture split)"
    if by_capture_dir is None:
        return Section("by-capture", title, f'<p class="missing">{NOT_PRODUCED}: the configuration runs no '
                       "by_capture split (by_capture.balancings is empty, or split.mode is by_capture).</p>")
    by_capture_dir = Path(by_capture_dir)
    if not by_capture_dir.is_dir():
        return Section("by-capture", title, missing_paragraph(results_dir, by_capture_dir))
    intro = (
        "<p>The stages from the split onwards, run again on the by_capture split: every capture lies whole "
        "in one split, so the test packets come from captures that training never saw. The stratified split "
        "above draws packets of one capture into all three splits. <code>results/tables/split_comparison</code> "
        "sets the two side by side.</p>\n"
    )
    body = (intro + tables_html(by_capture_dir / "tables", results_dir, max_rows)
            + "\n" + figures_html(by_capture_dir / "figures", results_dir))
    return Section("by-capture", title, body)


# ---------------------------------------------------------------- timings


def benchmark_rule(path: Path, benchmarks_dir: Path, frame: pd.DataFrame) -> str:
    """Return the rule of a benchmark file: its ``rule_name`` column, else its first path part."""
    # `snakemake --benchmark-extended` writes the rule name into the file.
    if "rule_name" in frame.columns and frame["rule_name"].notna().any():
        return str(frame["rule_name"].dropna().iloc[0])
    parts = path.relative_to(benchmarks_dir).parts
    return parts[0] if len(parts) > 1 else path.stem


def pattern_regex(pattern: str) -> re.Pattern:
    """Return a regular expression for a Snakemake file pattern.

    A wildcard ``{name}`` matches one or more characters other than ``/``,
    and ``{name,regex}`` matches ``regex``. Braces inside the regex, as in
    ``{name,[0-9]{2}}``, are kept.
    """
    parts, index = [], 0
    while index < len(pattern):
        if pattern[index] != "{":
            end = pattern.find("{", index)
            end = len(pattern) if end < 0 else end
            parts.append(re.escape(pattern[index:end]))
            index = end
            continue
        depth, end = 0, index
        for end in range(index, len(pattern)):
            depth += {"{": 1, "}": -1}.get(pattern[end], 0)
            if depth == 0:
                break
        if depth != 0:
            raise ValueError(f"unbalanced braces in file pattern {pattern!r}")
        _, _, constraint = pattern[index + 1:end].partition(",")
        parts.append(f"(?:{constraint.strip() or '[^/]+'})")
        index = end + 1
    return re.compile("".join(parts))


def literal_prefix_folder(pattern: str) -> Path:
    """Return the deepest folder of a file pattern that comes before its first wildcard."""
    head = pattern.split("{", 1)[0]
    return Path(head) if head.endswith("/") else Path(head).parent


def match_benchmark_files(patterns: Mapping[str, str], root: Path) -> list[tuple[str, Path]]:
    """Find the benchmark files of each rule from the rules' benchmark patterns.

    Parameters
    ----------
    patterns : mapping of str to str
        Rule name -> benchmark file pattern relative to ``root``, as in the
        rule's ``benchmark:`` directive (``results/benchmarks/evaluate/{balancing}_{protocol}.tsv``).
    root : pathlib.Path
        The folder the patterns are relative to (the workflow's working folder).

    Returns
    -------
    list of (str, pathlib.Path)
        Rule name and file, sorted by file. A file that two patterns match
        goes to the pattern with more fixed characters, so
        ``results/benchmarks/graph.tsv`` beats ``results/benchmarks/{name}.tsv``.
    """
    compiled = [(rule, pattern_regex(pattern), len(re.sub(r"\{[^}]*\}", "", pattern)), pattern)
                for rule, pattern in patterns.items()]
    owners: dict[Path, tuple[int, str]] = {}
    for rule, regex, fixed, pattern in compiled:
        folder = root / literal_prefix_folder(pattern)
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if not path.is_file() or not regex.fullmatch(path.relative_to(root).as_posix()):
                continue
            if path not in owners or fixed > owners[path][0]:
                owners[path] = (fixed, rule)
    return sorted(((rule, path) for path, (_, rule) in owners.items()), key=lambda item: str(item[1]))


def read_benchmarks(benchmarks_dir: Path, patterns: Mapping[str, str] | None = None,
                    root: Path | None = None) -> pd.DataFrame:
    """Read Snakemake benchmark files, one row per file.

    Parameters
    ----------
    benchmarks_dir : pathlib.Path
        Without ``patterns``, every ``*.tsv`` below this folder is read and
        its rule is its ``rule_name`` column, else the first part of its path
        below the folder (the file name at the top level).
    patterns : mapping of str to str, optional
        Rule name -> benchmark file pattern, as the report rule passes it.
        Then the files are those the patterns match below ``root``, each with
        its own rule, in whatever folder (the by_capture run's included).
    root : pathlib.Path, optional
        Folder the patterns are relative to; the current folder by default.

    Returns
    -------
    pandas.DataFrame
        Columns ``rule``, ``file``, ``wall_seconds`` (column ``s``),
        ``cpu_seconds`` (``cpu_time``) and ``max_rss_mb`` (``max_rss``). A
        file with several rows (benchmark repeats of one job) gives their
        mean; a missing or ``NA`` value is NaN.
    """
    if patterns is not None:
        files = match_benchmark_files(patterns, root or Path.cwd())
    else:
        files = [(None, path) for path in sorted(benchmarks_dir.rglob("*.tsv"))]
    records = []
    for rule, path in files:
        try:
            frame = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
            logger.warning("skipped benchmark file %s: %s", path, error)
            continue
        values = {key: pd.to_numeric(frame[column], errors="coerce").mean() if column in frame.columns else np.nan
                  for key, column in (("wall_seconds", "s"), ("cpu_seconds", "cpu_time"), ("max_rss_mb", "max_rss"))}
        rule = rule or benchmark_rule(path, benchmarks_dir, frame)
        records.append({"rule": rule, "file": str(path), **values})
    return pd.DataFrame(records, columns=["rule", "file", "wall_seconds", "cpu_seconds", "max_rss_mb"])


def summarize_benchmarks(benchmarks: pd.DataFrame) -> pd.DataFrame:
    """Sum wall and CPU seconds per rule and take the peak resident memory, slowest rule first.

    Parameters
    ----------
    benchmarks : pandas.DataFrame
        The output of :func:`read_benchmarks`.

    Returns
    -------
    pandas.DataFrame
        Columns ``rule``, ``jobs``, ``wall_seconds``, ``cpu_seconds`` and
        ``peak_max_rss_mb``, plus a last row ``total`` over all rules.
    """
    grouped = benchmarks.groupby("rule", sort=False)
    summary = pd.DataFrame({
        "jobs": grouped.size(),
        "wall_seconds": grouped["wall_seconds"].sum(min_count=1),
        "cpu_seconds": grouped["cpu_seconds"].sum(min_count=1),
        "peak_max_rss_mb": grouped["max_rss_mb"].max(),
    }).sort_values("wall_seconds", ascending=False).reset_index()
    total = {
        "rule": "total",
        "jobs": len(benchmarks),
        "wall_seconds": benchmarks["wall_seconds"].sum(min_count=1),
        "cpu_seconds": benchmarks["cpu_seconds"].sum(min_count=1),
        "peak_max_rss_mb": benchmarks["max_rss_mb"].max(),
    }
    return pd.concat([summary, pd.DataFrame([total])], ignore_index=True)


def format_number(value: object, digits: int) -> str:
    """Format a number with ``digits`` decimals, or return an empty string for NaN."""
    if value is None or pd.isna(value):
        return ""
    return f"{float(value):.{digits}f}"


def timings_section(results_dir: Path, skip_rules: Sequence[str] = (),
                    benchmark_patterns: Mapping[str, str] | None = None) -> Section:
    """Show wall seconds, CPU seconds and peak memory per rule from the benchmark files.

    With ``benchmark_patterns`` (rule -> benchmark file pattern), each file
    counts for the rule whose pattern it matches. Without, the files under
    ``results/benchmarks/`` count for their first folder.
    """
    folder = results_dir / "benchmarks"
    if benchmark_patterns is not None:
        benchmarks = read_benchmarks(folder, benchmark_patterns)
    else:
        benchmarks = read_benchmarks(folder) if folder.is_dir() else pd.DataFrame()
    if not benchmarks.empty:
        benchmarks = benchmarks[~benchmarks["rule"].isin(skip_rules)]
    if benchmarks.empty:
        return Section("timings", "Timings", missing_paragraph(results_dir, folder / "*.tsv"))
    summary = summarize_benchmarks(benchmarks)
    logger.info("read %d benchmark files of %d rules from %s", len(benchmarks), len(summary) - 1, folder)
    rows = [
        (row.rule, row.jobs, format_number(row.wall_seconds, 1), format_number(row.cpu_seconds, 1),
         format_number(row.peak_max_rss_mb, 1))
        for row in summary.itertuples(index=False)
    ]
    if benchmark_patterns is not None:
        source = (f"From {len(benchmarks)} Snakemake benchmark files, each counted for the rule whose "
                  "<code>benchmark:</code> pattern it matches.")
    else:
        source = (f"From {len(benchmarks)} Snakemake benchmark files under "
                  f"{escape(relative_name(folder, results_dir))}. A rule is the first folder of a file's path "
                  "(or the file name at the top level), so a folder that several rules write to counts as one.")
    intro = (
        f"<p>{source} Jobs run in parallel, so the total wall time exceeds the elapsed time of the run. "
        "Memory is the largest resident set size of one job, in MB.</p>\n"
    )
    header = ("rule", "jobs", "wall seconds (sum)", "CPU seconds (sum)", "peak max_rss (MB)")
    return Section("timings", "Timings", intro + html_table(header, rows))
