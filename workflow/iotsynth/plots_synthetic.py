"""Figures of generator training and synthetic data: loss curves and figures 8 to 10.

Every function takes the generator's name only for titles and file names, so
any generator that writes ``losses.csv`` and ``results/synthetic/<name>.parquet``
in the same layout (the WGAN variants, CTGAN) reuses them.

Figure 8 and figure 9 compare real and synthetic rows on one matched sample.
Each device type with synthetic training rows contributes the same number of
real and synthetic training rows (the smaller of its two counts), and all
counts are scaled down together to at most ``sample_rows`` per source. Device types without
synthetic rows (the largest class) are left out, so the class mix of both
sources is the same and a difference in the plots is a difference of the
generator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

LOGGER = logging.getLogger(__name__)

SOURCE_COLOURS = {"real": "#2471a3", "synthetic": "#d35400"}
SPLIT_NAMES = ("train", "val", "test")


def plot_losses(losses: pd.DataFrame, path: str | Path, generator_name: str) -> None:
    """Draw the per-epoch losses of one training run.

    Parameters
    ----------
    losses : pandas.DataFrame
        ``losses.csv``: ``epoch`` and any of ``critic_loss``,
        ``generator_loss``, ``wasserstein``, ``gradient_penalty``,
        ``graph_loss`` and ``penalty_*``; missing or all-NaN columns are
        skipped.
    path : str or pathlib.Path
        PNG to write; parent folders are created.
    generator_name : str
    """
    panels = [
        ("Critic and generator loss", ["critic_loss", "generator_loss"]),
        ("Wasserstein estimate", ["wasserstein"]),
        ("Gradient penalty", ["gradient_penalty"]),
        ("Graph loss and constraint penalties", ["graph_loss", "penalty_range", "penalty_correlation", "penalty_protocol"]),
    ]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, layout="constrained")
    for axis, (title, columns) in zip(axes.flat, panels, strict=True):
        for column in columns:
            if column in losses and losses[column].notna().any():
                axis.plot(losses["epoch"], losses[column], marker="." if len(losses) < 30 else None, label=column)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    for axis in axes[1]:
        axis.set_xlabel("epoch")
    figure.suptitle(f"{generator_name}: per-epoch means of the training losses")
    _save(figure, path)


def matched_sample(real: pd.DataFrame, synthetic: pd.DataFrame, sample_rows: int,
                   seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw real and synthetic rows with the same count per device type.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows with ``device_type``.
    sample_rows : int
        Maximum rows per source.
    seed : int

    Returns
    -------
    real_sample, synthetic_sample : pandas.DataFrame
        Equal counts per device type, at most ``sample_rows`` each.
    """
    rng = np.random.default_rng(seed)
    real_counts = real["device_type"].value_counts()
    synthetic_counts = synthetic["device_type"].value_counts()
    shared = real_counts.index.intersection(synthetic_counts.index).sort_values()
    matched = np.minimum(real_counts[shared], synthetic_counts[shared])
    if matched.sum() > sample_rows:
        matched = np.maximum(1, np.floor(matched * sample_rows / matched.sum())).astype(int)

    real_parts, synthetic_parts = [], []
    for device_type, count in matched.items():
        for source, parts in ((real, real_parts), (synthetic, synthetic_parts)):
            rows = np.flatnonzero(source["device_type"].to_numpy() == device_type)
            parts.append(source.iloc[np.sort(rng.choice(rows, size=int(count), replace=False))])
    if not real_parts:
        return real.iloc[:0], synthetic.iloc[:0]
    return pd.concat(real_parts, ignore_index=True), pd.concat(synthetic_parts, ignore_index=True)


def plot_projection(real: np.ndarray, synthetic: np.ndarray, path: str | Path, generator_name: str,
                    perplexity: float, seed: int) -> None:
    """Draw figure 8: PCA and t-SNE of real and synthetic rows fitted together.

    Parameters
    ----------
    real, synthetic : numpy.ndarray of shape (n_rows, n_columns)
        Rows in the preprocessor's space (scaled and one-hot).
    path : str or pathlib.Path
    generator_name : str
    perplexity : float
        t-SNE perplexity; lowered to ``(rows - 1) / 3`` for small samples.
    seed : int
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 5.5), layout="constrained")
    rows = np.vstack([real, synthetic])
    if len(real) < 2 or len(synthetic) < 2:
        _empty_figure(figure, axes, "fewer than two matched rows per source; nothing to project")
        _save(figure, path)
        return

    source = np.array(["real"] * len(real) + ["synthetic"] * len(synthetic))
    started = time.perf_counter()
    pca = PCA(n_components=2, random_state=seed).fit(rows)
    projected = pca.transform(rows)
    embedded = TSNE(n_components=2, perplexity=min(perplexity, (len(rows) - 1) / 3.0), init="pca",
                    random_state=seed).fit_transform(rows)
    LOGGER.info("PCA and t-SNE of %d rows in %.1f s", len(rows), time.perf_counter() - started)

    ratios = pca.explained_variance_ratio_
    labels = (f"PC1 ({ratios[0]:.1%} of variance)", f"PC2 ({ratios[1]:.1%})")
    _scatter_sources(axes[0], projected, source, "PCA", labels)
    _scatter_sources(axes[1], embedded, source, "t-SNE", ("t-SNE 1", "t-SNE 2"))
    figure.suptitle(f"{generator_name}: real and synthetic training rows, {len(real)} each, matched per device type")
    _save(figure, path)


def _scatter_sources(axis, points: np.ndarray, source: np.ndarray, title: str, labels: tuple[str, str]) -> None:
    # Shuffle the drawing order so neither source hides the other.
    order = np.random.default_rng(0).permutation(len(points))
    colours = np.array([SOURCE_COLOURS[name] for name in source])[order]
    axis.scatter(points[order, 0], points[order, 1], c=colours, s=4, alpha=0.5, linewidths=0)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colour, label=name)
               for name, colour in SOURCE_COLOURS.items()]
    axis.legend(handles=handles, loc="best", fontsize=8)
    axis.set_title(title)
    axis.set_xlabel(labels[0])
    axis.set_ylabel(labels[1])


def plot_correlation(real: pd.DataFrame, synthetic: pd.DataFrame, kinds: Mapping[str, str], path: str | Path,
                     generator_name: str) -> float:
    """Draw figure 9: Pearson correlation heatmaps of real and synthetic rows and their difference.

    Categorical features are left out (their codes have no order), and so
    are features constant in both samples. Cells of a feature constant in
    one sample are blank.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Feature columns in original units.
    kinds : mapping of str to str
        Feature kind by name; sets the columns and their order.
    path : str or pathlib.Path
    generator_name : str

    Returns
    -------
    float
        Mean absolute difference of the correlations over pairs defined in
        both samples (NaN when there is none).
    """
    names = [name for name, kind in kinds.items() if kind != "categorical"]
    varying = [name for name in names if real[name].nunique() > 1 or synthetic[name].nunique() > 1]
    real_correlation = real[varying].astype(float).corr()
    synthetic_correlation = synthetic[varying].astype(float).corr()
    difference = synthetic_correlation - real_correlation
    off_diagonal = ~np.eye(len(varying), dtype=bool)
    values = np.abs(difference.to_numpy())[off_diagonal]
    mean_difference = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    size = max(8.0, 0.09 * len(varying) + 3.0)
    figure, axes = plt.subplots(1, 3, figsize=(3 * size, size), layout="constrained")
    panels = [
        (real_correlation, "real", "Pearson r"),
        (synthetic_correlation, "synthetic", "Pearson r"),
        (difference, f"synthetic - real (mean |difference| {mean_difference:.3f})", "difference, clipped to [-1, 1]"),
    ]
    font = 6 if len(varying) <= 60 else 4
    for axis, (matrix, title, label) in zip(axes, panels, strict=True):
        image = axis.imshow(matrix.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        axis.set_title(title)
        axis.set_xticks(range(len(varying)), varying, rotation=90, fontsize=font)
        axis.set_yticks(range(len(varying)), varying, fontsize=font)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.02, label=label)
    figure.suptitle(f"{generator_name}: correlations of non-categorical features, {len(real)} matched rows per source")
    _save(figure, path)
    return mean_difference


def plot_class_distribution(counts: pd.DataFrame, path: str | Path, caption: str = "") -> None:
    """Draw figure 10: rows per device type in each split before and after balancing.

    Parameters
    ----------
    counts : pandas.DataFrame
        ``split``, ``device_type``, ``real`` and ``total`` (the balance
        rule's counts table).
    path : str or pathlib.Path
    caption : str
        Line under the title, e.g. the protocol and generator.
    """
    figure, axes = plt.subplots(len(SPLIT_NAMES), 1, figsize=(12, 10), sharex=True, layout="constrained")
    device_types = sorted(counts["device_type"].unique())
    positions = np.arange(len(device_types))
    for axis, split in zip(axes, SPLIT_NAMES, strict=True):
        part = counts[counts["split"] == split].set_index("device_type").reindex(device_types).fillna(0)
        axis.bar(positions - 0.2, part["real"], width=0.4, label="before (real rows)", color=SOURCE_COLOURS["real"])
        axis.bar(positions + 0.2, part["total"], width=0.4, label="after balancing", color=SOURCE_COLOURS["synthetic"])
        axis.set_yscale("log")
        axis.set_ylabel("rows (log scale)")
        axis.set_title(f"{split}: {int(part['real'].sum())} real rows, {int(part['total'].sum())} after balancing")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xticks(positions, device_types, rotation=60, ha="right", fontsize=8)
    figure.suptitle("Rows per device type before and after balancing" + (f"\n{caption}" if caption else ""))
    _save(figure, path)


def _empty_figure(figure, axes, message: str) -> None:
    for axis in np.ravel(axes):
        axis.set_axis_off()
    figure.text(0.5, 0.5, message, ha="center", va="center")


def _save(figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    plt.close(figure)


def run_fidelity_figures(train_path: str | Path, synthetic_path: str | Path, preprocessor_path: str | Path,
                         projection_path: str | Path, correlation_path: str | Path, generator_name: str,
                         figure_section: Mapping, seed: int) -> None:
    """Run the part of the ``plot_synthetic`` rule that draws figures 8 and 9 for one generator.

    Parameters
    ----------
    train_path : str or pathlib.Path
        Real training split.
    synthetic_path : str or pathlib.Path
        ``results/synthetic/<generator>.parquet``; its ``train`` rows are used.
    preprocessor_path : str or pathlib.Path
    projection_path, correlation_path : str or pathlib.Path
        Figure 8 and figure 9.
    generator_name : str
    figure_section : mapping
        ``balance.figures``: ``sample_rows`` and ``tsne_perplexity``.
    seed : int
    """
    from iotsynth.preprocess import Preprocessor

    preprocessor = Preprocessor.load(preprocessor_path)
    real = pd.read_parquet(train_path)
    synthetic = pd.read_parquet(synthetic_path)
    if "split" in synthetic.columns:
        synthetic = synthetic[synthetic["split"] == "train"]
    real_sample, synthetic_sample = matched_sample(real, synthetic, int(figure_section["sample_rows"]), seed)
    LOGGER.info("matched sample: %d rows per source over %d device types", len(real_sample),
                real_sample["device_type"].nunique())

    plot_projection(preprocessor.transform(real_sample), preprocessor.transform(synthetic_sample), projection_path,
                    generator_name, float(figure_section["tsne_perplexity"]), seed)
    kinds = {entry["name"]: entry["kind"] for entry in preprocessor.layout_}
    difference = plot_correlation(real_sample, synthetic_sample, kinds, correlation_path, generator_name)
    LOGGER.info("wrote %s and %s; mean absolute correlation difference %.4f", projection_path, correlation_path,
                difference)
