"""Tests of the generator, the critic, output decoding and the model file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from iotsynth.gan.layers import align_adjacency, normalized_adjacency
from iotsynth.gan.models import Critic, Generator, OutputActivation, TrainedGenerator, load_generator, save_generator
from iotsynth.gan.sample import generate_decoded
from iotsynth.gan.settings import WGANSettings
from iotsynth.gan.toydata import build_inputs, make_packet_table

SMALL = {"noise_dim": 8, "generator_layers": (32,), "critic_layers": (32,)}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run torch on one thread, which keeps these small models fast when other jobs share the CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def toy():
    """A small packet-like table with every feature kind and its derived inputs."""
    frame, dictionary = make_packet_table(600, n_device_types=3, seed=4, extra_discrete=2, extra_categorical=2)
    inputs = build_inputs(frame, dictionary)
    adjacency = align_adjacency(inputs.names, inputs.adjacency, inputs.preprocessor.layout_)
    return frame, inputs, adjacency


def make_generator(toy, seed=0, **overrides) -> Generator:
    _, inputs, adjacency = toy
    settings = WGANSettings(**{**SMALL, **overrides})
    generator = Generator(settings, inputs.preprocessor.layout_, len(inputs.constraints.device_types),
                          normalized_adjacency(adjacency))
    generator.reset_parameters(torch.Generator().manual_seed(seed))
    return generator


def test_activation_output_per_kind(toy):
    _, inputs, _ = toy
    layout = inputs.preprocessor.layout_
    activation = OutputActivation(layout, "softmax", 1.0, "hardtanh").eval()
    y = torch.randn(16, inputs.preprocessor.n_columns_) * 3

    out = activation(y)

    for entry in layout:
        block = out[:, entry["start"] : entry["stop"]]
        if entry["kind"] == "categorical":
            torch.testing.assert_close(block.sum(dim=1), torch.ones(16))
            assert (block >= 0).all()
        else:
            assert (block.abs() <= 1).all()
    # hardtanh reaches the range ends exactly, which tanh never does.
    assert (out.abs() == 1).any()


def test_gumbel_softmax_is_random_only_in_training(toy):
    _, inputs, _ = toy
    activation = OutputActivation(inputs.preprocessor.layout_, "gumbel_softmax", 0.5)
    y = torch.randn(4, inputs.preprocessor.n_columns_)

    first = activation.train()(y, torch.Generator().manual_seed(1))
    second = activation(y, torch.Generator().manual_seed(2))
    assert not torch.equal(first, second)
    torch.testing.assert_close(activation.eval()(y), activation(y))


def test_decode_gives_one_value_per_feature(toy):
    _, inputs, _ = toy
    layout = inputs.preprocessor.layout_
    activation = OutputActivation(layout, "gumbel_softmax", 0.5).eval()
    y = torch.randn(32, inputs.preprocessor.n_columns_)

    decoded = activation.decode(y, torch.Generator().manual_seed(0))

    for entry in layout:
        block = decoded[:, entry["start"] : entry["stop"]]
        if entry["kind"] == "categorical":
            assert ((block == 0) | (block == 1)).all()
            torch.testing.assert_close(block.sum(dim=1), torch.ones(32))
        elif entry["kind"] == "binary":
            assert ((block == -1) | (block == 1)).all()


def test_inverse_transform_of_generated_rows_is_valid(toy):
    frame, inputs, _ = toy
    preprocessor = inputs.preprocessor
    generator = make_generator(toy).eval()
    model = TrainedGenerator(generator, WGANSettings(**SMALL), inputs.constraints.device_types,
                             preprocessor.layout_, {})

    rows = preprocessor.inverse_transform(generate_decoded(model, 1, 300, torch.Generator().manual_seed(0), 128))

    assert len(rows) == 300
    for entry in preprocessor.layout_:
        values = rows[entry["name"]]
        assert values.notna().all(), entry["name"]
        assert str(values.dtype) == entry["dtype"], entry["name"]
        if entry["kind"] in ("continuous", "discrete"):
            assert values.min() >= entry["minimum"], entry["name"]
            assert values.max() <= entry["maximum"], entry["name"]
        if entry["kind"] == "discrete":
            assert (values == np.round(values)).all(), entry["name"]
        if entry["kind"] == "binary":
            assert set(values.unique()) <= {0, 1}, entry["name"]
        if entry["kind"] == "categorical":
            assert set(values.unique()) <= set(entry["categories"]), entry["name"]
    # The decoded rows go through the preprocessor and back unchanged.
    pd.testing.assert_frame_equal(preprocessor.inverse_transform(preprocessor.transform(rows)), rows)


def test_initialization_depends_on_seed_only(toy):
    first = make_generator(toy, seed=3).state_dict()
    second = make_generator(toy, seed=3).state_dict()
    other = make_generator(toy, seed=4).state_dict()

    for name, tensor in first.items():
        torch.testing.assert_close(tensor, second[name])
    assert any(not torch.equal(tensor, other[name]) for name, tensor in first.items())


def test_generator_without_graph_layer_needs_no_adjacency(toy):
    _, inputs, _ = toy
    settings = WGANSettings(**SMALL, graph_layer=False)
    generator = Generator(settings, inputs.preprocessor.layout_, 3)

    assert generator.graph is None
    with pytest.raises(ValueError, match="no adjacency"):
        Generator(WGANSettings(**SMALL), inputs.preprocessor.layout_, 3)


def test_critic_scores_each_row(toy):
    _, inputs, _ = toy
    critic = Critic(inputs.preprocessor.n_columns_, 3, (16, 16))
    critic.reset_parameters(torch.Generator().manual_seed(0))
    rows = torch.randn(5, inputs.preprocessor.n_columns_)

    assert critic(rows, torch.eye(3)[[0, 1, 2, 0, 1]]).shape == (5,)


def test_model_file_round_trip(toy, tmp_path):
    _, inputs, _ = toy
    generator = make_generator(toy, seed=5).eval()
    settings = WGANSettings(**SMALL)
    path = tmp_path / "model.pt"
    save_generator(path, generator, settings, inputs.constraints.device_types, inputs.preprocessor.layout_,
                   {"epochs": 3})

    model = load_generator(path)
    noise, condition = torch.randn(6, 8), torch.eye(3)[[0, 1, 2, 0, 1, 2]]

    assert model.class_names == inputs.constraints.device_types
    assert model.settings == settings
    assert model.metadata == {"epochs": 3}
    assert not model.generator.training
    with torch.no_grad():
        torch.testing.assert_close(model.generator(noise, condition), generator(noise, condition))
    assert all(tensor.device.type == "cpu" for tensor in torch.load(path, weights_only=True)["generator"].values())


def test_model_rejects_other_layout(toy, tmp_path):
    _, inputs, _ = toy
    path = tmp_path / "model.pt"
    save_generator(path, make_generator(toy), WGANSettings(**SMALL), inputs.constraints.device_types,
                   inputs.preprocessor.layout_, {})
    other = [dict(entry) for entry in inputs.preprocessor.layout_]
    other[0]["name"] = "renamed"

    with pytest.raises(ValueError, match="another feature layout"):
        load_generator(path).check_layout(other)


def test_load_rejects_foreign_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, path)

    with pytest.raises(ValueError, match="not an iotsynth WGAN model"):
        load_generator(path)
    with pytest.raises(FileNotFoundError, match="train_generator"):
        load_generator(tmp_path / "missing.pt")
