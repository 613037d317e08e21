"""Tests of synthesis with rejection, the balancing protocols and the synthetic-data figures."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from iotsynth.gan.balance import balance_protocol, class_targets, deficits, run_balance_stage
from iotsynth.gan.models import Generator, TrainedGenerator
from iotsynth.gan.sample import REJECTION_COLUMNS, sample_device_type, stream_seed, synthesize
from iotsynth.gan.settings import SamplingSettings, WGANSettings
from iotsynth.gan.toydata import build_inputs, make_packet_table
from iotsynth.plots_synthetic import matched_sample, plot_class_distribution, plot_correlation, plot_losses, plot_projection

SPLITS = ("train", "val", "test")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch on one thread, which keeps these small models fast when other jobs share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def toy():
    """Real splits of a toy table, its inputs and an untrained (but valid) generator."""
    frame, dictionary = make_packet_table(900, n_device_types=3, seed=6)
    rng = np.random.default_rng(0)
    split = rng.choice(SPLITS, size=len(frame), p=[0.6, 0.2, 0.2])
    splits = {name: frame[split == name].reset_index(drop=True) for name in SPLITS}
    inputs = build_inputs(splits["train"], dictionary)
    settings = WGANSettings(noise_dim=8, generator_layers=(32,), critic_layers=(32,), graph_layer=False)
    generator = Generator(settings, inputs.preprocessor.layout_, len(inputs.constraints.device_types))
    generator.reset_parameters(torch.Generator().manual_seed(0))
    model = TrainedGenerator(generator.eval(), settings, inputs.constraints.device_types,
                             inputs.preprocessor.layout_, {})
    return splits, inputs, model


def test_class_targets_never_drop_rows():
    counts = pd.Series({"a": 50, "b": 10, "c": 30})

    assert class_targets(counts, "max").tolist() == [50, 50, 50]
    assert class_targets(counts, 40).tolist() == [50, 40, 40]
    with pytest.raises(ValueError, match="balance.target"):
        class_targets(counts, "mean")
    with pytest.raises(ValueError, match="balance.target"):
        class_targets(counts, 0)


def test_deficits_per_split():
    labels = {"train": pd.Series(["a"] * 5 + ["b"] * 2), "test": pd.Series(["a", "b", "b"])}

    table = deficits(labels, "max")

    assert table[["split", "device_type", "real", "target", "synthetic"]].values.tolist() == [
        ["train", "a", 5, 5, 0],
        ["train", "b", 2, 5, 3],
        ["test", "a", 1, 2, 1],
        ["test", "b", 2, 2, 0],
    ]


def test_rejection_keeps_rows_within_tolerance(toy):
    _, inputs, model = toy
    device_type = model.class_names[0]
    settings = SamplingSettings(tolerance=0.1, max_rounds=20)

    rows, stats = sample_device_type(model, inputs.preprocessor, inputs.constraints, device_type, 200, settings, 7)

    assert len(rows) == 200
    assert set(stats) == set(REJECTION_COLUMNS) - {"split"}
    scores = inputs.constraints.row_violation_score(rows, [device_type] * len(rows))
    if stats["filled_from_rejected"] == 0:
        assert (scores <= 0.1).all()
    assert stats["generated"] >= 200 + stats["rejected"] - stats["filled_from_rejected"]
    assert stats["rejection_rate"] == pytest.approx(stats["rejected"] / stats["generated"])


def test_rejection_shortfall_is_filled_and_logged(toy, caplog):
    _, inputs, model = toy
    device_type = model.class_names[1]
    # An untrained generator rarely keeps every rule, so one round cannot fill the request.
    settings = SamplingSettings(tolerance=0.0, max_rounds=1, oversample=1.0)

    with caplog.at_level(logging.WARNING, logger="iotsynth.gan.sample"):
        rows, stats = sample_device_type(model, inputs.preprocessor, inputs.constraints, device_type, 300,
                                         settings, 8)

    assert len(rows) == 300
    assert stats["filled_from_rejected"] > 0
    assert "least-violating rejected rows" in caplog.text


def test_without_rejection_rows_are_kept_and_counted(toy):
    _, inputs, model = toy
    settings = SamplingSettings(rejection=False)

    rows, stats = sample_device_type(model, inputs.preprocessor, inputs.constraints, model.class_names[2], 150,
                                     settings, 9)

    assert len(rows) == 150
    assert stats["generated"] == 150
    assert stats["rejected"] == 0
    assert 0.0 <= stats["violation_rate"] <= 1.0


def test_same_seed_same_samples(toy):
    _, inputs, model = toy
    settings = SamplingSettings(tolerance=0.2)
    device_type = model.class_names[0]
    draw = lambda seed: sample_device_type(model, inputs.preprocessor, inputs.constraints, device_type, 50,  # noqa: E731
                                           settings, seed)[0]

    pd.testing.assert_frame_equal(draw(11), draw(11))
    assert not draw(11).equals(draw(12))
    assert stream_seed(1, "train", device_type) != stream_seed(1, "val", device_type)


def test_synthesize_tops_up_every_split(toy):
    splits, inputs, model = toy
    needed = deficits({name: splits[name]["device_type"] for name in SPLITS}, "max")

    frame, rejection = synthesize(model, inputs.preprocessor, inputs.constraints, needed,
                                  SamplingSettings(tolerance=0.2), seed=1, generator_name="wgan")

    counts = frame.groupby(["split", "device_type"]).size()
    expected = needed[needed["synthetic"] > 0].set_index(["split", "device_type"])["synthetic"]
    assert counts.sort_index().equals(expected.sort_index())
    assert frame["synthetic"].all()
    assert list(frame.columns[:5]) == ["split", "capture", "device", "device_type", "frame"]
    assert frame["capture"].str.startswith("synthetic:wgan:").all()
    assert set(rejection["split"]) <= set(SPLITS)
    for name in splits["train"].columns:
        assert frame[name].dtype == splits["train"][name].dtype, name


def test_protocols_balance_and_keep_real_test(toy, tmp_path):
    splits, inputs, model = toy
    needed = deficits({name: splits[name]["device_type"] for name in SPLITS}, "max")
    synthetic, _ = synthesize(model, inputs.preprocessor, inputs.constraints, needed,
                              SamplingSettings(tolerance=0.2), seed=1, generator_name="wgan")

    paper, paper_counts = balance_protocol(splits, synthetic, "paper", "max")
    real_test, _ = balance_protocol(splits, synthetic, "real_test", "max")

    for name in SPLITS:
        sizes = paper[name]["device_type"].value_counts()
        assert sizes.nunique() == 1, name
        assert sizes.iloc[0] == splits[name]["device_type"].value_counts().max()
    pd.testing.assert_frame_equal(real_test["train"], paper["train"])
    pd.testing.assert_frame_equal(real_test["val"], paper["val"])
    pd.testing.assert_frame_equal(real_test["test"].drop(columns="synthetic"), splits["test"])
    assert not real_test["test"]["synthetic"].any()
    assert (paper_counts["total"] == paper_counts["real"] + paper_counts["synthetic"]).all()

    paths = {name: tmp_path / f"{name}.parquet" for name in SPLITS}
    for name in SPLITS:
        splits[name].to_parquet(paths[name], index=False)
    synthetic.to_parquet(tmp_path / "synthetic.parquet", index=False)
    outputs = {name: tmp_path / "balanced" / f"{name}.parquet" for name in SPLITS}
    run_balance_stage(paths, tmp_path / "synthetic.parquet", outputs, tmp_path / "counts.csv", "real_test", "max")
    pd.testing.assert_frame_equal(pd.read_parquet(outputs["test"]), real_test["test"])


def test_balance_rejects_mismatched_synthetic_rows(toy):
    splits, inputs, model = toy
    needed = deficits({name: splits[name]["device_type"] for name in SPLITS}, "max")
    synthetic, _ = synthesize(model, inputs.preprocessor, inputs.constraints, needed,
                              SamplingSettings(rejection=False), seed=1, generator_name="wgan")

    with pytest.raises(ValueError, match="Rerun the synthesize rule"):
        balance_protocol(splits, synthetic.iloc[5:], "paper", "max")
    with pytest.raises(ValueError, match="Rerun the synthesize rule"):
        balance_protocol(splits, synthetic, "paper", 10_000)


def test_figures_are_written(toy, tmp_path):
    splits, inputs, model = toy
    needed = deficits({name: splits[name]["device_type"] for name in SPLITS}, "max")
    synthetic, _ = synthesize(model, inputs.preprocessor, inputs.constraints, needed,
                              SamplingSettings(rejection=False), seed=1, generator_name="wgan")
    real_sample, synthetic_sample = matched_sample(splits["train"], synthetic[synthetic["split"] == "train"], 120, 0)
    _, counts = balance_protocol(splits, synthetic, "paper", "max")
    losses = pd.DataFrame({"epoch": [1, 2], "critic_loss": [1.0, 0.5], "generator_loss": [0.2, 0.1],
                           "wasserstein": [0.3, 0.2], "gradient_penalty": [0.1, 0.05],
                           "graph_loss": [np.nan, np.nan]})

    assert real_sample["device_type"].value_counts().equals(synthetic_sample["device_type"].value_counts())
    assert len(real_sample) <= 120
    plot_projection(inputs.preprocessor.transform(real_sample), inputs.preprocessor.transform(synthetic_sample),
                    tmp_path / "figure08.png", "wgan", 30.0, 0)
    kinds = {entry["name"]: entry["kind"] for entry in inputs.preprocessor.layout_}
    difference = plot_correlation(real_sample, synthetic_sample, kinds, tmp_path / "figure09.png", "wgan")
    plot_class_distribution(counts, tmp_path / "figure10.png", "protocol paper")
    plot_losses(losses, tmp_path / "losses.png", "wgan")

    assert 0.0 <= difference <= 2.0
    for name in ("figure08.png", "figure09.png", "figure10.png", "losses.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
