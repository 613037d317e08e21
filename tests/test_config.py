"""The configuration files against their schema and their documentation."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
CONFIG_README = (REPO / "config/README.md").read_text()


def merged(base: dict, override: dict) -> dict:
    """Merge ``override`` into a copy of ``base`` the way Snakemake merges config files."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def section_paths(node: dict, prefix: tuple = ()) -> list[tuple]:
    """Return the key path of every mapping in the configuration, the root included."""
    paths = [prefix]
    for key, value in node.items():
        if isinstance(value, dict) and value and key != "device_types":
            paths.extend(section_paths(value, prefix + (key,)))
    return paths


def leaf_keys(node: dict) -> set[str]:
    keys = set()
    for key, value in node.items():
        if isinstance(value, dict) and key != "device_types":
            keys |= leaf_keys(value)
        else:
            keys.add(key)
    return keys


def test_default_config_is_valid():
    jsonschema.validate(CONFIG, SCHEMA)


@pytest.mark.parametrize("name", ["test.yaml", "local-captures.yaml"])
def test_override_files_are_valid(name):
    override = yaml.safe_load((REPO / "config" / name).read_text())

    jsonschema.validate(merged(CONFIG, override), SCHEMA)


@pytest.mark.parametrize("path", section_paths(CONFIG), ids=lambda p: ".".join(p) or "top")
def test_unknown_key_rejected_in_every_section(path):
    config = copy.deepcopy(CONFIG)
    section = config
    for key in path:
        section = section[key]
    section["mistyped_key"] = 1

    with pytest.raises(jsonschema.ValidationError, match="mistyped_key"):
        jsonschema.validate(config, SCHEMA)


@pytest.mark.parametrize("key", sorted(leaf_keys(CONFIG)))
def test_every_key_is_documented(key):
    assert f"`{key}`" in CONFIG_README or f".{key}`" in CONFIG_README, f"config/README.md does not describe {key!r}"


def test_split_shares_must_be_numbers():
    config = merged(CONFIG, {"split": {"train": "0.64"}})

    with pytest.raises(jsonschema.ValidationError, match="'0.64'"):
        jsonschema.validate(config, SCHEMA)
