"""Tests of WGAN training: constraint guidance, repeatability, checkpoints and the stage outputs."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from iotsynth.gan import checkpoints
from iotsynth.gan.layers import align_adjacency
from iotsynth.gan.models import TrainedGenerator, load_generator
from iotsynth.gan.sample import generate_decoded
from iotsynth.gan.settings import WGANSettings
from iotsynth.gan.toydata import build_inputs, make_packet_table
from iotsynth.gan.train import LOSS_COLUMNS, ClassBalancedSampler, WGANTrainer, run_training_stage, training_arrays

# Small networks and a large learning rate, so a few epochs already move the generator.
FAST = {"noise_dim": 16, "generator_layers": (64, 64), "critic_layers": (64, 64), "batch_size": 128,
        "generator_learning_rate": 1e-3, "critic_learning_rate": 1e-3}
OFF = {"graph_layer": False, "graph_loss": False, "penalties": False}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch on one thread, which keeps these small models fast when other jobs share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def toy():
    frame, dictionary = make_packet_table(1500, n_device_types=3, seed=5)
    inputs = build_inputs(frame, dictionary)
    x, y = training_arrays(frame, inputs.preprocessor, inputs.constraints.device_types)
    adjacency = align_adjacency(inputs.names, inputs.adjacency, inputs.preprocessor.layout_)
    return frame, dictionary, inputs, adjacency, x, y


def train(toy, settings: WGANSettings, seed: int = 0, checkpoint_dir=None) -> WGANTrainer:
    _, _, inputs, adjacency, x, y = toy
    trainer = WGANTrainer(settings, inputs.preprocessor, inputs.constraints.device_types, adjacency,
                          inputs.constraints, seed=seed, checkpoint_dir=checkpoint_dir, progress=False)
    return trainer.fit(x, y)


def mean_violation_score(toy, trainer: WGANTrainer, rows_per_type: int = 400) -> float:
    _, _, inputs, _, _, _ = toy
    model = TrainedGenerator(trainer.generator_.eval(), trainer.settings, inputs.constraints.device_types,
                             inputs.preprocessor.layout_, {})
    scores = []
    for index, device_type in enumerate(model.class_names):
        decoded = generate_decoded(model, index, rows_per_type, torch.Generator().manual_seed(index), 4096)
        rows = inputs.preprocessor.inverse_transform(decoded)
        scores.append(inputs.constraints.row_violation_score(rows, [device_type] * len(rows)))
    return float(np.concatenate(scores).mean())


def test_penalties_lower_violation_rate(toy):
    # Strong weights, so that eight short epochs already show the effect.
    strong = {"penalties": True, "penalty_range": 100.0, "penalty_protocol": 10.0}
    guided = train(toy, WGANSettings(epochs=8, **FAST, **dict(OFF, **strong)))
    plain = train(toy, WGANSettings(epochs=8, **FAST, **OFF))

    assert mean_violation_score(toy, guided) < mean_violation_score(toy, plain)
    last_guided, last_plain = guided.losses_.iloc[-1], plain.losses_.iloc[-1]
    assert last_guided["penalty_range"] < last_plain["penalty_range"]
    assert last_guided["penalty_protocol"] < last_plain["penalty_protocol"]


def test_same_seed_same_losses_and_samples(toy):
    settings = WGANSettings(epochs=2, **FAST)
    first, second, other = train(toy, settings, seed=1), train(toy, settings, seed=1), train(toy, settings, seed=2)

    pd.testing.assert_frame_equal(first.losses_.drop(columns="seconds"), second.losses_.drop(columns="seconds"))
    assert not first.losses_["critic_loss"].equals(other.losses_["critic_loss"])
    for name, tensor in first.generator_.state_dict().items():
        torch.testing.assert_close(tensor, second.generator_.state_dict()[name], rtol=0, atol=0)


def test_losses_have_every_column(toy):
    trainer = train(toy, WGANSettings(epochs=2, **FAST, **OFF))
    losses = trainer.losses_

    assert list(losses.columns) == list(LOSS_COLUMNS)
    assert losses["epoch"].tolist() == [1, 2]
    assert losses.drop(columns="epoch").notna().all().all()
    # Without penalties in the objective, the objective is the adversarial loss alone,
    # while the penalty columns are still measured for comparison.
    np.testing.assert_allclose(losses["generator_objective"], losses["generator_loss"])
    assert (losses["penalty_protocol"] > 0).all()


def test_resume_continues_loss_log(toy, tmp_path):
    folder = tmp_path / "checkpoints"
    uninterrupted = train(toy, WGANSettings(epochs=4, **FAST))
    train(toy, WGANSettings(epochs=2, checkpoint_every=1, **FAST), checkpoint_dir=folder)
    resumed = train(toy, WGANSettings(epochs=4, checkpoint_every=1, **FAST), checkpoint_dir=folder)

    assert resumed.resumed_from_ == 2
    assert resumed.losses_["epoch"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(resumed.losses_.drop(columns="seconds"),
                                  uninterrupted.losses_.drop(columns="seconds"))
    assert [epoch for epoch, _ in checkpoints.list_checkpoints(folder)] == [3, 4]


def test_killed_training_resumes_from_last_checkpoint(toy, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    settings = WGANSettings(epochs=4, checkpoint_every=2, **FAST)
    original = WGANTrainer._run_epoch

    def killed_in_epoch_4(self, epoch, steps):
        if epoch == 4:
            raise KeyboardInterrupt("killed")
        return original(self, epoch, steps)

    monkeypatch.setattr(WGANTrainer, "_run_epoch", killed_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        train(toy, settings, checkpoint_dir=folder)
    monkeypatch.setattr(WGANTrainer, "_run_epoch", original)

    resumed = train(toy, settings, checkpoint_dir=folder)
    uninterrupted = train(toy, settings)
    assert resumed.resumed_from_ == 2
    pd.testing.assert_frame_equal(resumed.losses_.drop(columns="seconds"),
                                  uninterrupted.losses_.drop(columns="seconds"))


def test_diverged_training_stops(toy, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    settings = WGANSettings(epochs=4, checkpoint_every=1, **FAST)
    original = WGANTrainer._run_epoch

    def nan_in_epoch_3(self, epoch, steps):
        row = original(self, epoch, steps)
        if epoch == 3:
            row["wasserstein"] = float("nan")
        return row

    monkeypatch.setattr(WGANTrainer, "_run_epoch", nan_in_epoch_3)
    with pytest.raises(FloatingPointError, match=r"wgan diverged in epoch 3: wasserstein is nan.*epoch 2 in"):
        train(toy, settings, checkpoint_dir=folder)

    assert [epoch for epoch, _ in checkpoints.list_checkpoints(folder)] == [1, 2]


def test_checkpoint_of_other_settings_is_not_resumed(toy, tmp_path):
    folder = tmp_path / "checkpoints"
    train(toy, WGANSettings(epochs=1, **FAST), checkpoint_dir=folder)
    changed = train(toy, WGANSettings(epochs=1, gradient_penalty=5.0, **FAST), checkpoint_dir=folder)

    assert changed.resumed_from_ == 0
    saved = torch.load(checkpoints.list_checkpoints(folder)[-1][1], weights_only=True)
    assert saved["fingerprint"] == changed.fingerprint_


def test_checkpoint_keys_stay_stable(toy, tmp_path):
    # Killed runs resume from these keys, so a renamed key would make them start over.
    train(toy, WGANSettings(epochs=1, **FAST), checkpoint_dir=tmp_path)
    saved = torch.load(checkpoints.list_checkpoints(tmp_path)[-1][1], weights_only=True)

    assert list(saved) == ["format", "epoch", "fingerprint", "generator", "critic", "generator_optimizer",
                           "critic_optimizer", "rng_state", "losses"]
    assert isinstance(saved["rng_state"], torch.Tensor)


def test_progress_logs_every_epoch(toy, caplog):
    _, _, inputs, adjacency, x, y = toy
    trainer = WGANTrainer(WGANSettings(epochs=2, **FAST, **OFF), inputs.preprocessor, inputs.constraints.device_types,
                          adjacency, inputs.constraints, progress=True)

    with caplog.at_level(logging.INFO, logger="iotsynth.gan.trainer_base"):
        trainer.fit(x, y)

    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("wgan epoch ")]
    assert len(lines) == 2
    assert lines[1].startswith("wgan epoch 2/2: critic_loss ")
    # Terms that the variant does not train with are still measured and logged.
    assert "penalty_protocol" in lines[0]
    assert "graph_loss" in lines[0]


def test_class_sampler_weights_device_types():
    labels = torch.tensor([0] * 900 + [1] * 100)
    uniform = ClassBalancedSampler(labels, 2, 0.0, torch.Generator().manual_seed(0))
    empirical = ClassBalancedSampler(labels, 2, 1.0, torch.Generator().manual_seed(0))

    rows, classes = uniform.draw(20000)
    assert torch.equal(labels[rows], classes)
    assert float((classes == 1).float().mean()) == pytest.approx(0.5, abs=0.02)
    assert float((empirical.draw(20000)[1] == 1).float().mean()) == pytest.approx(0.1, abs=0.01)


def test_training_arrays_reject_unknown_device_type(toy):
    frame, _, inputs, _, _, _ = toy
    other = frame.assign(device_type="unknown-device")

    with pytest.raises(ValueError, match="without constraints"):
        training_arrays(other, inputs.preprocessor, inputs.constraints.device_types)


def test_variant_needs_its_inputs(toy):
    _, _, inputs, adjacency, x, y = toy
    with pytest.raises(ValueError, match="constraint set"):
        WGANTrainer(WGANSettings(epochs=1, **FAST), inputs.preprocessor, inputs.constraints.device_types,
                    adjacency, None).fit(x, y)
    with pytest.raises(ValueError, match="adjacency"):
        WGANTrainer(WGANSettings(epochs=1, **FAST), inputs.preprocessor, inputs.constraints.device_types,
                    None, inputs.constraints).fit(x, y)


def test_training_stage_writes_outputs(toy, tmp_path):
    frame, _, inputs, _, _, _ = toy
    train_path, preprocessor_path = tmp_path / "train.parquet", tmp_path / "preprocessor.json"
    adjacency_path, constraints_path = tmp_path / "adjacency.csv", tmp_path / "constraints.json"
    frame.to_parquet(train_path, index=False)
    inputs.preprocessor.save(preprocessor_path)
    pd.DataFrame(inputs.adjacency, index=pd.Index(inputs.names, name="feature"), columns=inputs.names).to_csv(adjacency_path)
    inputs.constraints.save(constraints_path)
    section = {
        "epochs": 2, "batch_size": 128, "noise_dim": 16, "generator_layers": [32], "critic_layers": [32],
        "variants": {"wgan": {"graph_layer": True, "graph_loss": True, "penalties": True, "rejection": True}},
    }
    out = tmp_path / "models" / "wgan"

    run_training_stage(train_path, preprocessor_path, adjacency_path, constraints_path, out / "model.pt",
                       out / "losses.csv", out / "hyperparameters.csv", tmp_path / "wgan_losses.png",
                       out / "checkpoints", section, "wgan", seed=3)

    model = load_generator(out / "model.pt")
    assert model.metadata["epochs"] == 2
    assert model.class_names == inputs.constraints.device_types
    assert len(pd.read_csv(out / "losses.csv")) == 2
    table = pd.read_csv(out / "hyperparameters.csv").set_index("parameter")["value"]
    assert table["critic_steps"] == "5"
    assert table["training_rows"] == str(len(frame))
    assert (tmp_path / "wgan_losses.png").stat().st_size > 0
    assert json.loads(json.dumps(model.settings.to_dict()))["variant"] == "wgan"
