"""Tests of the constraint-guided CTGAN baseline (iotsynth.ctgan_guided) on a small packet-like table."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from threadpoolctl import threadpool_limits

from iotsynth.ctgan_guided.bridge import CTGANOutput
from iotsynth.ctgan_guided.model import ConditionalGenerator, load_ctgan
from iotsynth.ctgan_guided.settings import CTGANSettings, TransformerSettings, hyperparameter_table
from iotsynth.ctgan_guided.stages import run_synthesis_stage, run_training_stage, run_transformer_stage
from iotsynth.ctgan_guided.train import CTGANTrainer, class_indices
from iotsynth.ctgan_guided.transformer import (
    column_specs,
    discrete_columns,
    fit_transformer,
    load_transformer,
    save_transformer,
    transform_rows,
)
from iotsynth.gan.sample import synthesize
from iotsynth.gan.settings import SamplingSettings
from iotsynth.gan.toydata import build_inputs, make_packet_table

# Few mixture components keep the transformer fit to about a second.
TRANSFORMER = TransformerSettings(max_clusters=4, discrete_max_values=8)
SMALL = {
    "epochs": 2,
    "batch_size": 64,
    "critic_steps": 1,
    "noise_dim": 16,
    "generator_layers": (32, 32),
    "critic_layers": (32, 32),
    "generator_learning_rate": 2e-3,
    "critic_learning_rate": 2e-3,
    "checkpoint_every": 1,
    "device": "cpu",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run torch and BLAS on one thread: several threads on a busy machine make small ops far slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def table():
    frame, dictionary = make_packet_table(600, n_device_types=3, seed=1)
    # A feature constant in training: its preprocessor range is empty.
    frame["constant_size"] = 42.0
    dictionary = pd.concat([dictionary, pd.DataFrame({"name": ["constant_size"], "kind": ["continuous"]})],
                           ignore_index=True)
    return frame, dictionary


@pytest.fixture(scope="module")
def inputs(table):
    return build_inputs(*table)


@pytest.fixture(scope="module")
def fitted(table):
    frame, dictionary = table
    transformer, discrete = fit_transformer(frame, dictionary, TRANSFORMER)
    data = transform_rows(transformer, frame, list(dictionary["name"]))
    return transformer, discrete, data, column_specs(transformer)


@pytest.fixture(scope="module")
def output(fitted, inputs):
    return CTGANOutput(fitted[3], inputs.preprocessor.layout_, temperature=0.2)


def test_discrete_columns_by_kind_and_count(table):
    frame, dictionary = table
    chosen = discrete_columns(frame, dictionary, max_values=8)

    assert {"is_tcp", "is_udp", "tcp_flag_syn", "ip_proto", "port_class"} <= set(chosen)
    assert "ttl" in chosen  # discrete with 3 values
    assert "tcp_window" not in chosen  # discrete with hundreds of values
    assert "packet_size" not in chosen  # continuous
    assert "ttl" not in discrete_columns(frame, dictionary, max_values=0)


def test_fit_transformer_missing_feature(table):
    frame, dictionary = table

    with pytest.raises(ValueError, match="lack 1 feature columns"):
        fit_transformer(frame.drop(columns=["ttl"]), dictionary, TRANSFORMER)


def test_bridge_agrees_with_library_inverse(fitted, inputs, table):
    transformer, _, data, _ = fitted
    names = list(table[1]["name"])
    output = CTGANOutput(fitted[3], inputs.preprocessor.layout_, temperature=0.2)

    mapped = output.to_preprocessed(torch.from_numpy(data)).numpy()
    ours = inputs.preprocessor.inverse_transform(mapped)
    library = transformer.inverse_transform(data.astype(np.float64))

    for name in names:
        if pd.api.types.is_integer_dtype(library[name]):
            np.testing.assert_array_equal(ours[name].to_numpy(), library[name].to_numpy(), err_msg=name)
        else:
            np.testing.assert_allclose(ours[name].to_numpy(), library[name].to_numpy(), rtol=1e-5, atol=1e-4,
                                       err_msg=name)


def test_bridge_constant_feature_maps_to_zero(fitted, inputs):
    _, _, data, _ = fitted
    output = CTGANOutput(fitted[3], inputs.preprocessor.layout_, temperature=0.2)
    column = next(entry["start"] for entry in inputs.preprocessor.layout_ if entry["name"] == "constant_size")

    mapped = output.to_preprocessed(torch.from_numpy(data)).numpy()

    assert np.all(mapped[:, column] == 0.0)


def test_bridge_rejects_other_features(fitted, inputs):
    layout = [entry for entry in inputs.preprocessor.layout_ if entry["name"] != "ttl"]

    with pytest.raises(ValueError, match="'ttl'"):
        CTGANOutput(fitted[3], layout, temperature=0.2)


def test_decode_recovers_confident_rows(fitted, output, inputs):
    _, _, data, _ = fitted
    rows = torch.from_numpy(data[:50])
    # Logits of +-30 at the one-hot positions outweigh any Gumbel noise the
    # decoder adds, and atanh inverts the alpha activation.
    y = torch.where(rows > 0.5, 30.0, -30.0)
    y[:, output.alpha_columns] = torch.atanh(rows[:, output.alpha_columns].clamp(-0.999, 0.999))

    decoded = output.decode(y, torch.Generator().manual_seed(0)).numpy()
    expected = output.to_preprocessed(rows).numpy()

    np.testing.assert_allclose(decoded, expected, atol=1e-4)


def test_decode_gives_one_value_per_feature(output, inputs):
    y = torch.randn((200, output.width), generator=torch.Generator().manual_seed(0))

    decoded = output.decode(y, torch.Generator().manual_seed(1)).numpy()

    for entry in inputs.preprocessor.layout_:
        block = decoded[:, entry["start"]:entry["stop"]]
        if entry["kind"] == "binary":
            assert set(np.unique(block)) <= {-1.0, 1.0}, entry["name"]
        elif entry["kind"] == "categorical":
            np.testing.assert_array_equal(block.sum(axis=1), 1.0, err_msg=entry["name"])


def test_penalties_differentiable_through_bridge(output, inputs):
    constraints = inputs.constraints
    y = torch.randn((96, output.width), generator=torch.Generator().manual_seed(2), requires_grad=True)
    classes = torch.arange(96) % len(constraints.device_types)

    rows = output.to_preprocessed(output(y, torch.Generator().manual_seed(3)))
    terms = constraints.torch_penalties(rows, classes, inputs.preprocessor)
    total = terms["range"] + terms["protocol"] + terms["correlation"]
    total.backward()

    assert total.item() > 0
    assert torch.isfinite(y.grad).all()
    assert y.grad[:, output.alpha_columns].abs().sum() > 0
    spans = torch.ones(output.width, dtype=torch.bool)
    spans[output.alpha_columns] = False
    assert y.grad[:, spans].abs().sum() > 0


def test_penalty_descent_lowers_violations(fitted, inputs):
    specs = fitted[3]
    constraints = inputs.constraints
    settings = CTGANSettings(**SMALL)
    generator = ConditionalGenerator(settings, specs, inputs.preprocessor.layout_, len(constraints.device_types))
    generator.reset_parameters(torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-2)
    rng = torch.Generator().manual_seed(1)
    classes = torch.arange(128) % len(constraints.device_types)
    condition = torch.nn.functional.one_hot(classes, len(constraints.device_types)).float()

    def penalty():
        rows = generator.activation.to_preprocessed(generator(torch.randn((128, 16), generator=rng), condition, rng))
        terms = constraints.torch_penalties(rows, classes, inputs.preprocessor)
        return terms["range"] + terms["protocol"]

    first = penalty().item()
    for _ in range(25):
        optimizer.zero_grad()
        penalty().backward()
        optimizer.step()
    with torch.no_grad():
        last = penalty().item()

    assert last < 0.5 * first


def test_training_with_penalties_breaks_fewer_rules(fitted, inputs, table):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)
    scores = {}
    for weight in (0.0, 20.0):
        settings = CTGANSettings(**{**SMALL, "epochs": 3, "penalty_range": weight, "penalty_protocol": weight})
        trainer = CTGANTrainer(settings, specs, inputs.preprocessor, constraints.device_types, constraints,
                               seed=5).fit(data, y)
        scores[weight] = trainer.losses_["penalty_range"].iloc[-1] + trainer.losses_["penalty_protocol"].iloc[-1]

    assert scores[20.0] < scores[0.0]


def test_trainer_records_every_loss_column(fitted, inputs, table):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)

    trainer = CTGANTrainer(CTGANSettings(**SMALL), specs, inputs.preprocessor, constraints.device_types, constraints,
                           seed=0).fit(data, y)
    losses = trainer.losses_

    assert list(losses["epoch"]) == [1, 2]
    for column in ("critic_loss", "generator_loss", "wasserstein", "gradient_penalty", "penalty_range",
                   "penalty_correlation", "penalty_protocol", "seconds"):
        assert losses[column].notna().all(), column
    assert losses["graph_loss"].isna().all()
    assert not trainer.generator_.training


def test_global_random_state_restored(fitted, inputs, table):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)
    np.random.seed(123)
    torch.manual_seed(123)
    expected_numpy, expected_torch = np.random.random(), torch.rand(1).item()
    np.random.seed(123)
    torch.manual_seed(123)

    CTGANTrainer(CTGANSettings(**{**SMALL, "epochs": 1}), specs, inputs.preprocessor, constraints.device_types,
                 constraints, seed=0).fit(data, y)

    assert np.random.random() == expected_numpy
    assert torch.rand(1).item() == expected_torch


def test_resume_matches_uninterrupted_run(fitted, inputs, table, tmp_path):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)

    def train(epochs, folder):
        settings = CTGANSettings(**{**SMALL, "epochs": epochs})
        return CTGANTrainer(settings, specs, inputs.preprocessor, constraints.device_types, constraints, seed=7,
                            checkpoint_dir=folder).fit(data, y)

    straight = train(3, None)
    train(2, tmp_path / "checkpoints")
    resumed = train(3, tmp_path / "checkpoints")

    assert resumed.resumed_from_ == 2
    columns = ["critic_loss", "generator_loss", "penalty_range", "penalty_protocol"]
    pd.testing.assert_frame_equal(resumed.losses_[columns], straight.losses_[columns])


def test_checkpoint_keys_stay_stable(fitted, inputs, table, tmp_path):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)
    CTGANTrainer(CTGANSettings(**{**SMALL, "epochs": 1}), specs, inputs.preprocessor, constraints.device_types,
                 constraints, seed=0, checkpoint_dir=tmp_path).fit(data, y)

    saved = torch.load(tmp_path / "epoch_0001.pt", weights_only=True)

    # Killed runs resume from these keys, so a renamed key would make them start over.
    assert list(saved) == ["format", "epoch", "fingerprint", "generator", "discriminator", "generator_optimizer",
                           "discriminator_optimizer", "random_states", "losses"]
    assert {"torch", "numpy_kind", "numpy_keys", "numpy_position"} <= set(saved["random_states"])


def test_trainer_rejects_wrong_width(fitted, inputs, table):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)
    trainer = CTGANTrainer(CTGANSettings(**SMALL), specs, inputs.preprocessor, constraints.device_types, constraints)

    with pytest.raises(ValueError, match="expected"):
        trainer.fit(data[:, 1:], y)


def test_saved_model_synthesizes_with_rejection(fitted, inputs, table, tmp_path):
    _, _, data, specs = fitted
    constraints = inputs.constraints
    y = class_indices(table[0], constraints.device_types)
    trainer = CTGANTrainer(CTGANSettings(**SMALL), specs, inputs.preprocessor, constraints.device_types, constraints,
                           seed=0).fit(data, y)
    trainer.save(tmp_path / "model.pt")
    needed = pd.DataFrame({"split": ["train", "val"], "device_type": constraints.device_types[1:3],
                           "synthetic": [40, 25]})

    model = load_ctgan(tmp_path / "model.pt")
    rows, rejection = synthesize(model, inputs.preprocessor, constraints, needed, SamplingSettings(max_rounds=3),
                                 seed=3, generator_name="ctgan")

    assert model.metadata["epochs"] == 2
    assert rows.groupby(["split", "device_type"]).size().to_dict() == {
        ("train", constraints.device_types[1]): 40, ("val", constraints.device_types[2]): 25}
    assert rows["synthetic"].all()
    assert (rows["device"] == "synthetic:ctgan").all()
    assert {entry["name"] for entry in inputs.preprocessor.layout_} <= set(rows.columns)
    assert (rejection["generated"] >= rejection["requested"]).all()


def test_load_ctgan_rejects_other_files(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / "other.pt")

    with pytest.raises(ValueError, match="not an iotsynth CTGAN model"):
        load_ctgan(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="train_ctgan"):
        load_ctgan(tmp_path / "missing.pt")


def test_transformer_file_roundtrip(fitted, table, tmp_path):
    transformer, discrete, data, _ = fitted
    frame, dictionary = table
    save_transformer(tmp_path / "transformer.pkl", transformer, list(dictionary["name"]), discrete, TRANSFORMER)

    first = load_transformer(tmp_path / "transformer.pkl")
    second = load_transformer(tmp_path / "transformer.pkl")

    assert first["discrete_columns"] == discrete
    assert first["settings"]["max_clusters"] == TRANSFORMER.max_clusters
    rows = transform_rows(first["transformer"], frame, first["features"])
    assert rows.shape == data.shape
    # rdt draws each value's mixture component from a per-column generator
    # stored in the transformer, so a transformer read fresh from its file
    # gives the same rows every time.
    np.testing.assert_array_equal(transform_rows(second["transformer"], frame, second["features"]), rows)


def test_settings_shared_with_wgan():
    wgan = {"epochs": 7, "batch_size": 256, "critic_steps": 3, "noise_dim": 64, "generator_layers": [128],
            "critic_layers": [64, 64], "learning_rate": {"generator": 3e-4, "critic": 2e-4}, "betas": [0.4, 0.8],
            "gradient_penalty": 5.0, "penalties": {"range": 2.0, "correlation": 0.5, "protocol": 3.0},
            "checkpoint_every": 2, "keep_checkpoints": 1, "device": "cpu", "class_sampling": "sqrt"}
    ctgan = {"pac": 4, "weight_decay": 0.0, "gumbel_temperature": 0.5, "log_frequency": False, "penalties": False}

    settings = CTGANSettings.from_config(wgan, ctgan)

    assert (settings.epochs, settings.batch_size, settings.critic_steps) == (7, 256, 3)
    assert settings.generator_layers == (128,)
    assert settings.betas == (0.4, 0.8)
    assert settings.penalty_weights == {"range": 2.0, "correlation": 0.5, "protocol": 3.0}
    assert (settings.pac, settings.log_frequency, settings.penalties) == (4, False, False)
    assert CTGANSettings.from_dict(settings.to_dict()) == settings


def test_settings_pac_must_divide_batch():
    with pytest.raises(ValueError, match="ctgan.pac 10"):
        CTGANSettings(batch_size=512, pac=10)


def test_hyperparameter_table_lists_every_setting():
    table = hyperparameter_table(CTGANSettings(), TransformerSettings(), {"training_rows": (600, "rows")})

    assert table["description"].str.len().gt(0).all()
    assert {"pac", "epochs", "transformer_discrete_max_values", "training_rows"} <= set(table["parameter"])


def test_stages_write_their_outputs(table, inputs, tmp_path):
    frame, dictionary = table
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "val", "test")}
    frame.to_parquet(paths["train"])
    frame.groupby("device_type").head(30).to_parquet(paths["val"])
    frame.groupby("device_type").head(20).to_parquet(paths["test"])
    dictionary.to_csv(tmp_path / "dictionary.csv", index=False)
    inputs.preprocessor.save(tmp_path / "preprocessor.json")
    inputs.constraints.save(tmp_path / "constraints.json")
    ctgan = {"transformer": {"max_clusters": 4, "weight_threshold": 0.005, "discrete_max_values": 8}, "pac": 8,
             "weight_decay": 1e-6, "gumbel_temperature": 0.2, "log_frequency": True, "penalties": True,
             "rejection": True}
    wgan = {"epochs": 1, "batch_size": 64, "critic_steps": 1, "noise_dim": 16, "generator_layers": [32],
            "critic_layers": [32], "learning_rate": {"generator": 1e-3, "critic": 1e-3}, "betas": [0.5, 0.9],
            "gradient_penalty": 10.0, "penalties": {"range": 1.0, "correlation": 1.0, "protocol": 1.0},
            "checkpoint_every": 1, "keep_checkpoints": 1, "device": "cpu"}
    balance = {"target": "max", "chunk_rows": 512, "rejection": {"tolerance": 0.0, "max_rounds": 2, "oversample": 1.25}}
    models = tmp_path / "models"

    run_transformer_stage(paths["train"], tmp_path / "dictionary.csv", models / "transformer.pkl",
                          models / "columns.csv", ctgan)
    run_training_stage(paths["train"], models / "transformer.pkl", tmp_path / "preprocessor.json",
                       tmp_path / "constraints.json", models / "model.pt", models / "losses.csv",
                       models / "hyperparameters.csv", tmp_path / "losses.png", models / "checkpoints", wgan, ctgan,
                       seed=1)
    rejection = run_synthesis_stage(models / "model.pt", paths, tmp_path / "preprocessor.json",
                                    tmp_path / "constraints.json", tmp_path / "synthetic.parquet",
                                    tmp_path / "rejection.csv", balance, rejection=True, seed=1)

    columns = pd.read_csv(models / "columns.csv")
    assert set(columns["name"]) == set(dictionary["name"])
    assert len(pd.read_csv(models / "losses.csv")) == 1
    assert (tmp_path / "losses.png").stat().st_size > 0
    synthetic = pd.read_parquet(tmp_path / "synthetic.parquet")
    counts = frame["device_type"].value_counts()
    expected_train = int((counts.max() - counts).sum())
    assert int((synthetic["split"] == "train").sum()) == expected_train
    assert math.isclose(rejection["requested"].sum(), len(synthetic))
