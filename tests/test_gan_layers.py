"""Tests of the graph conditioning: adjacency handling, message passing and the correlation loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iotsynth.gan.layers import (
    FeatureGraphLayer,
    GraphCorrelationLoss,
    align_adjacency,
    batch_correlation,
    column_features,
    column_pair_weights,
    normalized_adjacency,
)

# Three features: a scaled one (column 0), a categorical one with three
# categories (columns 1-3) and a binary one (column 4). Only the scaled and
# the categorical feature are linked.
LAYOUT = [
    {"name": "size", "kind": "continuous", "start": 0, "stop": 1, "minimum": 0.0, "maximum": 1.0},
    {"name": "proto", "kind": "categorical", "start": 1, "stop": 4, "categories": [1, 6, 17]},
    {"name": "flag", "kind": "binary", "start": 4, "stop": 5},
]
ADJACENCY = np.array([[0.0, 0.6, 0.0], [0.6, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_normalized_adjacency_matches_formula():
    result = normalized_adjacency(ADJACENCY)
    degree = np.array([1.6, 1.6, 1.0])
    expected = (ADJACENCY + np.eye(3)) / np.sqrt(degree[:, None] * degree[None, :])

    np.testing.assert_allclose(result, expected)
    np.testing.assert_allclose(result, result.T)
    # A feature without edges keeps only its self-loop.
    assert result[2, 2] == pytest.approx(1.0)


def test_align_adjacency_reorders_to_layout():
    names = ["flag", "size", "proto"]
    shuffled = ADJACENCY[np.ix_([2, 0, 1], [2, 0, 1])]

    np.testing.assert_array_equal(align_adjacency(names, shuffled, LAYOUT), ADJACENCY)


def test_align_adjacency_rejects_other_features():
    with pytest.raises(ValueError, match="different features"):
        align_adjacency(["size", "proto", "ttl"], ADJACENCY, LAYOUT)


def test_column_features_maps_one_hot_group():
    np.testing.assert_array_equal(column_features(LAYOUT), [0, 1, 1, 1, 2])


def test_column_pair_weights_split_edge_weight():
    weights = column_pair_weights(ADJACENCY, LAYOUT)

    # The 0.6 edge is spread over the three (size, category) column pairs.
    np.testing.assert_allclose(weights[0, 1:4], [0.2, 0.2, 0.2])
    assert weights[0, 1:4].sum() == pytest.approx(0.6)
    # No pairs inside the one-hot group, none with the unlinked feature, none below the diagonal.
    assert not weights[1:4, 1:4].any()
    assert not weights[:, 4].any()
    assert not np.tril(weights).any()


def test_batch_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 4))
    values[:, 1] += values[:, 0]

    correlation, std = batch_correlation(torch.tensor(values, dtype=torch.float64))

    np.testing.assert_allclose(correlation.numpy(), np.corrcoef(values.T), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), values.std(axis=0), rtol=1e-6)


def test_correlation_loss_zero_for_same_batch():
    rng = np.random.default_rng(1)
    real = torch.tensor(rng.normal(size=(64, 5)), dtype=torch.float32)
    loss = GraphCorrelationLoss(column_pair_weights(ADJACENCY, LAYOUT))

    assert float(loss(real, real)) == pytest.approx(0.0, abs=1e-6)


def test_correlation_loss_penalises_lost_correlation():
    rng = np.random.default_rng(2)
    size = rng.normal(size=256)
    real = np.zeros((256, 5))
    real[:, 0] = size
    real[np.arange(256), 1 + (size > 0)] = 1.0  # the category follows the size
    fake = real.copy()
    fake[:, 0] = rng.permutation(size)  # same values, link broken
    loss = GraphCorrelationLoss(column_pair_weights(ADJACENCY, LAYOUT))
    fake_tensor = torch.tensor(fake, dtype=torch.float32, requires_grad=True)

    value = loss(fake_tensor, torch.tensor(real, dtype=torch.float32))
    value.backward()

    assert float(value.detach()) > 0.1
    assert fake_tensor.grad[:, 0].abs().sum() > 0


def test_correlation_loss_skips_constant_real_columns():
    rng = np.random.default_rng(3)
    real = torch.tensor(rng.normal(size=(64, 5)), dtype=torch.float32)
    real[:, 0] = 0.5  # no correlation is defined for column 0 in the real batch
    fake = torch.tensor(rng.normal(size=(64, 5)), dtype=torch.float32)
    loss = GraphCorrelationLoss(column_pair_weights(ADJACENCY, LAYOUT))

    # Every weighted pair involves column 0, so nothing is left to compare.
    assert float(loss(fake, real)) == pytest.approx(0.0, abs=1e-6)


def test_graph_layer_starts_as_identity():
    layer = FeatureGraphLayer(LAYOUT, normalized_adjacency(ADJACENCY), steps=2)
    layer.reset_parameters()
    y = torch.randn(8, 5)

    torch.testing.assert_close(layer(y), y)


def test_graph_layer_passes_messages_along_edges_only():
    layer = FeatureGraphLayer(LAYOUT, normalized_adjacency(ADJACENCY), steps=2)
    layer.reset_parameters()
    with torch.no_grad():
        for gate in layer.gates:
            gate.fill_(0.5)
    y = torch.randn(8, 5, requires_grad=True)

    out = layer(y)
    size_grad = torch.autograd.grad(out[:, 0].sum(), y, retain_graph=True)[0]
    flag_grad = torch.autograd.grad(out[:, 4].sum(), y)[0]

    # The scaled feature hears from the linked categorical columns ...
    assert size_grad[:, 1:4].abs().sum() > 0
    # ... but not from the unlinked binary feature, which hears from nobody.
    assert size_grad[:, 4].abs().sum() == 0
    assert flag_grad[:, :4].abs().sum() == 0


def test_graph_layer_rejects_wrong_adjacency_shape():
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        FeatureGraphLayer(LAYOUT, np.eye(4), steps=1)


def test_constant_column_gradient_finite():
    # A saturated generator output is constant over the batch, and its gradient must stay finite.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    x[:, 1] = 1.0
    x.requires_grad_(True)

    correlation, std = batch_correlation(x)
    (correlation[0, 1] + correlation[0, 2]).backward()

    assert torch.isfinite(x.grad).all()
    assert std[1] < 1e-9
    assert torch.isfinite(correlation).all()


def test_varying_column_exact_sqrt():
    generator = torch.Generator().manual_seed(1)
    # Column 3 varies by far less than float32 resolution at 1, but not by 0.
    x = torch.randn(32, 4, generator=generator)
    x[:, 3] = torch.linspace(0, 1e-20, 32)
    x.requires_grad_(True)
    plain = x.detach().clone().requires_grad_(True)

    correlation, std = batch_correlation(x)
    centered = plain - plain.mean(dim=0, keepdim=True)
    expected_std = centered.pow(2).mean(dim=0).sqrt()
    standardized = centered / (expected_std + 1e-6)
    expected = standardized.T @ standardized / 32
    correlation.sum().backward()
    expected.sum().backward()

    assert torch.equal(std, expected_std)
    assert torch.equal(correlation, expected)
    assert torch.equal(x.grad, plain.grad)
