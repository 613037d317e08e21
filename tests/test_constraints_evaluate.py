"""NumPy and PyTorch evaluation of one constraint set, and their agreement on one-hot rows."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_constraints_data import make_dictionary, make_edges, make_frame

from iotsynth.constraints.build import build_constraints
from iotsynth.constraints.evaluate import correlation_checks, summarize_rates
from iotsynth.constraints.settings import ConstraintSettings, LLMSettings
from iotsynth.preprocess import Preprocessor


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    train = make_frame(600, seed=0)
    dictionary = make_dictionary()
    preprocessor = Preprocessor().fit(train, dictionary)
    constraint_set = build_constraints(
        train, dictionary, make_edges(train), LLMSettings(backend="offline"), ConstraintSettings(),
        tmp_path_factory.mktemp("audit"), layout=preprocessor.layout_,
    )
    return train, constraint_set, preprocessor


def broken_rows(train: pd.DataFrame) -> pd.DataFrame:
    """Return rows that break rules of each section, with values the preprocessor has seen."""
    rows = train.groupby("device_type").head(40).copy().reset_index(drop=True)
    udp = rows["is_udp"] == 1
    rows.loc[udp[udp].index[::3], "tcp_flag_syn"] = 1
    rows.loc[::5, "pkt_size"] = train["pkt_size"].max()
    rows.loc[1::7, "ip_ttl"] = 255
    rows.loc[2::11, "payload_entropy"] = 0.0
    return rows


def class_index(constraint_set, labels):
    return torch.tensor([constraint_set.device_types.index(label) for label in labels], dtype=torch.int64)


def test_numpy_and_torch_agree_on_one_hot_rows(fitted):
    train, constraint_set, preprocessor = fitted
    rows = pd.concat([make_frame(100, seed=9), broken_rows(train)], ignore_index=True)
    x = torch.tensor(preprocessor.transform(rows))
    classes = class_index(constraint_set, rows["device_type"])
    program = constraint_set.torch_program(preprocessor)

    penalty = program.row_penalties(x, classes)

    compared = 0
    for position, device_type in enumerate(constraint_set.device_types):
        selected = (classes == position).numpy()
        expected = constraint_set.violations(rows[selected], device_type)
        got = penalty[torch.from_numpy(selected)][:, : len(program.rule_ids[position])].numpy() > 0
        assert list(expected.columns) == program.rule_ids[position]
        assert (expected.to_numpy() == got).all(), expected.columns[(expected.to_numpy() != got).any(axis=0)].tolist()
        compared += expected.to_numpy().sum()
    assert compared > 20


def test_correlation_numpy_and_torch_agree(fitted):
    train, constraint_set, preprocessor = fitted
    rows = make_frame(200, seed=4)
    rows.loc[rows["device_type"] == "Aria", "flow_bytes"] = rows["flow_bytes"].to_numpy()[::-1][: (rows["device_type"] == "Aria").sum()]
    x = torch.tensor(preprocessor.transform(rows))
    classes = class_index(constraint_set, rows["device_type"])

    checks = correlation_checks(constraint_set, rows, rows["device_type"].to_numpy())
    signs = [
        next(rule.sign for rule in constraint_set.correlation_rules(check.device_type) if rule.rule_id == check.rule_id)
        for check in checks.itertuples()
    ]
    expected = np.maximum(checks["threshold"] - np.asarray(signs) * checks["pearson"], 0.0).mean()
    got = constraint_set.torch_program(preprocessor).correlation_penalty(x, classes)

    assert checks["checked"].all()
    assert checks["violated"].any()
    assert float(got) == pytest.approx(expected, abs=1e-5)


def test_training_rows_have_zero_penalty(fitted):
    train, constraint_set, preprocessor = fitted
    x = torch.tensor(preprocessor.transform(train))

    penalties = constraint_set.torch_penalties(x, class_index(constraint_set, train["device_type"]), preprocessor)

    assert set(penalties) == {"range", "protocol", "correlation"}
    assert all(value.ndim == 0 for value in penalties.values())
    assert float(penalties["protocol"]) == 0.0
    assert float(penalties["correlation"]) == 0.0
    assert float(penalties["range"]) < 1e-4


def test_penalties_have_gradients_toward_the_rules(fitted):
    train, constraint_set, preprocessor = fitted
    rows = broken_rows(train)
    x = torch.tensor(preprocessor.transform(rows), requires_grad=True)
    classes = class_index(constraint_set, rows["device_type"])

    penalties = constraint_set.torch_penalties(x, classes, preprocessor)
    (penalties["range"] + penalties["protocol"]).backward()

    syn = next(entry for entry in preprocessor.layout_ if entry["name"] == "tcp_flag_syn")["start"]
    broken_syn = torch.tensor(((rows["is_udp"] == 1) & (rows["tcp_flag_syn"] == 1)).to_numpy())
    assert penalties["protocol"].item() > 0
    assert (x.grad[broken_syn, syn] > 0).all()

    stepped = (x - 0.05 * x.grad / x.grad.abs().max()).detach()
    after = constraint_set.torch_penalties(stepped, classes, preprocessor)
    assert after["protocol"].item() < penalties["protocol"].item()


def test_soft_categorical_condition_is_differentiable(fitted):
    train, constraint_set, preprocessor = fitted
    rows = train[train["device_type"] == "Aria"].head(50)
    x = torch.tensor(preprocessor.transform(rows))
    layout = {entry["name"]: entry for entry in preprocessor.layout_}
    proto = layout["ip_proto"]
    # Spread the ip_proto group evenly: a softmax-like output that is no category in particular.
    x[:, proto["start"] : proto["stop"]] = 1.0 / (proto["stop"] - proto["start"])
    x.requires_grad_(True)

    penalties = constraint_set.torch_penalties(x, class_index(constraint_set, rows["device_type"]), preprocessor)
    penalties["protocol"].backward()

    assert penalties["protocol"].item() > 0
    assert x.grad[:, proto["start"] : proto["stop"]].abs().sum() > 0


def test_detach_conditions_false_lets_gradient_reach_condition(fitted):
    train, constraint_set, preprocessor = fitted
    rows = broken_rows(train)
    classes = class_index(constraint_set, rows["device_type"])
    udp = next(entry for entry in preprocessor.layout_ if entry["name"] == "is_udp")["start"]

    gradients = {}
    for detach in (True, False):
        x = torch.tensor(preprocessor.transform(rows), requires_grad=True)
        constraint_set.torch_penalties(x, classes, preprocessor, detach_conditions=detach)["protocol"].backward()
        gradients[detach] = x.grad[:, udp].abs().sum().item()

    assert gradients[False] > gradients[True]


def test_correlation_skipped_below_min_rows(fitted):
    _, constraint_set, preprocessor = fitted
    n_rows = constraint_set.correlation_min_rows - 1
    x = torch.zeros((n_rows, preprocessor.n_columns_), requires_grad=True)
    classes = torch.zeros(n_rows, dtype=torch.int64)

    penalties = constraint_set.torch_penalties(x, classes, preprocessor)
    penalties["correlation"].backward()

    assert penalties["correlation"].item() == 0.0
    assert (x.grad == 0).all()


def test_torch_input_checks(fitted):
    _, constraint_set, preprocessor = fitted
    x = torch.zeros((4, preprocessor.n_columns_))
    with pytest.raises(ValueError, match="shape"):
        constraint_set.torch_penalties(x[:, :-1], torch.zeros(4, dtype=torch.int64), preprocessor)
    with pytest.raises(ValueError, match="LongTensor"):
        constraint_set.torch_penalties(x, torch.zeros(4, dtype=torch.int32), preprocessor)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        constraint_set.torch_penalties(x, torch.full((4,), 3, dtype=torch.int64), preprocessor)


def test_torch_program_is_compiled_once(fitted):
    _, constraint_set, preprocessor = fitted
    assert constraint_set.torch_program(preprocessor) is constraint_set.torch_program(preprocessor)


def test_row_violation_score(fitted):
    train, constraint_set, _ = fitted
    rows = broken_rows(train)
    labels = rows["device_type"].to_numpy()

    scores = constraint_set.row_violation_score(rows, labels)

    for device_type in constraint_set.device_types:
        selected = labels == device_type
        expected = constraint_set.violations(rows[selected], device_type).mean(axis=1).to_numpy()
        np.testing.assert_allclose(scores[selected], expected)
    assert (scores > 0).any()


def test_violation_rates_table(fitted):
    train, constraint_set, _ = fitted
    rows = broken_rows(train)

    rates = constraint_set.violation_rates(rows, rows["device_type"].to_numpy())

    assert set(rates["section"]) == {"range", "protocol", "correlation"}
    row_rules = rates[rates["section"] != "correlation"]
    assert (row_rules["n_violated"] <= row_rules["n_applicable"]).all()
    np.testing.assert_allclose(row_rules["rate"], row_rules["n_violated"] / row_rules["n_rows"])
    summary = summarize_rates(rates).set_index("section")
    assert summary.loc["protocol", "violation_rate"] > 0


def test_unknown_label_named(fitted):
    train, constraint_set, _ = fitted
    with pytest.raises(ValueError, match="'Nest'"):
        constraint_set.violation_rates(train.head(2), ["Aria", "Nest"])


def test_missing_feature_column_named(fitted):
    train, constraint_set, _ = fitted
    with pytest.raises(ValueError, match="pkt_size"):
        constraint_set.violations(train.drop(columns="pkt_size"), "Aria")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_penalties_match_on_cuda(fitted):
    train, constraint_set, preprocessor = fitted
    rows = broken_rows(train)
    x = torch.tensor(preprocessor.transform(rows))
    classes = class_index(constraint_set, rows["device_type"])

    on_cpu = constraint_set.torch_penalties(x, classes, preprocessor)
    on_cuda = constraint_set.torch_penalties(x.cuda(), classes.cuda(), preprocessor)

    for name, value in on_cpu.items():
        assert on_cuda[name].device.type == "cuda"
        assert on_cuda[name].item() == pytest.approx(value.item(), rel=1e-4, abs=1e-7)
