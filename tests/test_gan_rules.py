"""Tests of the generator rules' wiring and of the wgan and balance config sections."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from iotsynth.gan.settings import SamplingSettings, WGANSettings, hyperparameter_table

REPO = Path(__file__).resolve().parents[1]
INPUTS = (
    "results/splits/train.parquet",
    "results/splits/val.parquet",
    "results/splits/test.parquet",
    "results/preprocess/preprocessor.json",
    "results/graph/adjacency.csv",
    "results/constraints/constraints.json",
)


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_config_sections_match_schema(config):
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    jsonschema.Draft202012Validator(schema).validate(config)

    broken = {**config, "wgan": {**config["wgan"], "epoch": 3}}
    with pytest.raises(jsonschema.ValidationError, match="epoch"):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_config_defaults_match_settings_defaults(config):
    for variant, switches in config["wgan"]["variants"].items():
        settings = WGANSettings.from_config(config["wgan"], variant)
        expected = WGANSettings(variant=variant, **{key: switches[key] for key in ("graph_layer", "graph_loss", "penalties")})
        assert settings == expected, variant
    assert SamplingSettings.from_config(config["balance"], True) == SamplingSettings()


def test_unknown_variant_is_rejected(config):
    with pytest.raises(KeyError, match="wgan.variants"):
        WGANSettings.from_config(config["wgan"], "wgan_typo")


def test_hyperparameter_table_lists_every_setting():
    table = hyperparameter_table(WGANSettings(), {"training_rows": (100, "rows")})

    assert list(table.columns) == ["parameter", "value", "description"]
    assert len(table) == len(WGANSettings().to_dict()) + 1
    assert table["description"].str.len().min() > 0
    assert table.set_index("parameter").loc["generator_layers", "value"] == "256 256"


def test_rules_plan_every_generator_job(tmp_path):
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{REPO / "config" / "config.yaml"}"\n'
        f'include: "{REPO / "workflow" / "rules" / "common.smk"}"\n'
        f'include: "{REPO / "workflow" / "rules" / "generators.smk"}"\n'
        "rule all:\n    input: generator_targets(WGAN_VARIANTS)\n"
    )
    for name in INPUTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()

    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=tmp_path,
                            capture_output=True, text=True)

    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    assert counts["train_generator"] == "2"
    assert counts["synthesize"] == "2"
    assert counts["balance"] == "4"
    assert counts["plot_synthetic"] == "2"
    assert counts["plot_class_distribution"] == "1"
