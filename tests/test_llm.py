"""What both LLM stages send, pinned by SHA-256 digests of fixed inputs.

The constraint and validation stages share their request, repair and cache
code. These tests keep what reaches the Messages API stub on 127.0.0.1 (every
request body, repair messages included) and the cache keys byte for byte the
same when that shared code changes. No test reaches a real API.

NOTE: prompts round statistics to 6 significant digits, so a NumPy upgrade
alone can change a digest. A failing assert shows the new digest; update
``EXPECTED`` only after checking that the change to the requests is intended.
"""

import hashlib
import json

import pandas as pd
import pytest
from test_constraints_anthropic import clean_environment, stub  # noqa: F401 (pytest fixtures)
from test_constraints_data import FEATURES, make_dictionary, make_frame, make_ranges

from iotsynth.constraints import offline
from iotsynth.constraints.build import build_constraints
from iotsynth.constraints.model import SECTIONS, ConstraintValidationError
from iotsynth.constraints.prompt import build_prompt
from iotsynth.constraints.settings import ConstraintSettings, LLMSettings
from iotsynth.preprocess import Preprocessor
from iotsynth.validation.anthropic_backend import ValidationReplyError
from iotsynth.validation.prompt import build_validation_prompt
from iotsynth.validation.settings import ValidationSettings
from iotsynth.validation.stage import validate_generator

MODEL = "claude-test-model"
SEED = 42

EXPECTED = {
    "constraint_prompt": "2b5ad01cbbad8cb946590b5a19bd3ce4250106d92e193e63e38be8c6cdf41950",
    "constraint_cache_key": "e18b21c32a0e2e56f1b9e29ef12a67519ad4139ea82da6837172580d44acb7ca",
    "constraint_prompt_file": "405c0e93c46ecc41fdce0655d21abef5948dff2477cc47afce44b653d6c865ae",
    "constraint_requests": "f6f6cc7dd5d8e393c8671e5d8f02584c27eea4a78163ef39488d56c528faca74",
    "validation_prompt": "3f59db4bb702f63bfe84001a3feac36380ce0666aeba9579c9ef75a22ca7ac6e",
    "validation_cache_key": "d3ac12c3d1739125086264a696a854c26576619b745ae05c0d173a7d1b9fadae",
    "validation_stage_cache_key": "1a67eafa8ea665721e9d4d0afeaa76f0653e8556034ac5882624fce034ab7ed6",
    "validation_requests": "af0f8c4c1d7a1b98facdf71ae4db2e21913d96d5d84559cd8da94d2d57d15e03",
}


def digest(content: object) -> str:
    """Return the SHA-256 of ``content`` as canonical JSON."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fixed_edges() -> pd.DataFrame:
    """Return a small edge table with fixed weights, so no matrix product enters the prompt."""
    names = [name for name, kind in FEATURES if kind != "categorical"]
    pairs = list(zip(names[:-1], names[1:]))
    return pd.DataFrame(
        {
            "source": [first for first, _ in pairs],
            "target": [second for _, second in pairs],
            "pearson": [round(0.9 - 0.05 * index, 2) for index in range(len(pairs))],
            "weight": [round(0.9 - 0.05 * index, 2) for index in range(len(pairs))],
            "sign": [1 if index % 3 else -1 for index in range(len(pairs))],
        }
    )


def aria_frame(n_rows: int = 60, seed: int = 11) -> pd.DataFrame:
    frame = make_frame(n_rows, seed=seed)
    return frame[frame["device_type"] == "Aria"].reset_index(drop=True)


def message(blocks: list[dict], stop_reason: str) -> tuple:
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }
    return (200, body, {}, 0)


def repair_script(tool: str, invalid: dict) -> list[tuple]:
    """Return three replies: no tool call, two calls with an invalid input, then the invalid input again."""
    call = {"type": "tool_use", "id": "toolu_01", "name": tool, "input": invalid}
    return [
        message([{"type": "text", "text": "No tool call here."}], "end_turn"),
        message([call, {**call, "id": "toolu_02"}], "tool_use"),
        message([call], "tool_use"),
    ]


def llm_settings(stub, tmp_path) -> LLMSettings:
    return LLMSettings(
        backend="anthropic", model=MODEL, max_tokens=1000, timeout=5.0, max_retries=0, max_repair_attempts=2,
        tool_choice="forced", base_url=stub.url, cache_dir=str(tmp_path / "cache"),
    )


def cached_record(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def validation_inputs() -> dict:
    train = make_frame(80, seed=5)
    synthetic = aria_frame(40, seed=6)
    return {
        "train": train,
        "synthetic": synthetic,
        "real": train[train["device_type"] == "Aria"].reset_index(drop=True),
        "dictionary": make_dictionary(),
    }


def test_constraint_prompt_unchanged():
    frame = aria_frame()

    prompt = build_prompt("Aria", frame, make_dictionary(), fixed_edges(), make_ranges(frame), ConstraintSettings())

    assert digest(prompt.to_json()) == EXPECTED["constraint_prompt"]
    assert prompt.cache_key(MODEL) == EXPECTED["constraint_cache_key"]


def test_constraint_requests_unchanged(stub, tmp_path):
    frame = aria_frame()
    invalid = {
        "numerical_constraints": {"ghost": {"min": 1, "max": 0, "typical": [0, 1]}},
        "feature_correlations": [],
        "protocol_rules": [],
    }
    stub.script = repair_script("record_constraints", invalid)

    with pytest.raises(ConstraintValidationError, match="after 3 requests"):
        build_constraints(
            frame, make_dictionary(), fixed_edges(), llm_settings(stub, tmp_path), ConstraintSettings(),
            tmp_path / "audit", environ={"ANTHROPIC_API_KEY": "test-key"},
        )

    prompt_file = json.loads((tmp_path / "audit" / "prompts" / "Aria.json").read_text(encoding="utf-8"))
    assert prompt_file["prompt_hash"] == EXPECTED["constraint_cache_key"]
    assert digest(prompt_file) == EXPECTED["constraint_prompt_file"]
    assert len(stub.requests) == 3
    assert digest([request["body"] for request in stub.requests]) == EXPECTED["constraint_requests"]


def test_validation_prompt_unchanged():
    inputs = validation_inputs()

    prompt = build_validation_prompt(
        "Aria", inputs["synthetic"], inputs["real"], len(inputs["synthetic"]), inputs["dictionary"], 5, 3, 10
    )

    content = {"system": prompt.system, "user": prompt.user, "tool": prompt.tool, "features": list(prompt.features)}
    assert digest(content) == EXPECTED["validation_prompt"]
    assert prompt.cache_key(MODEL) == EXPECTED["validation_cache_key"]


def test_validation_requests_unchanged(stub, tmp_path):
    inputs = validation_inputs()
    train, dictionary = inputs["train"], inputs["dictionary"]
    constraint_set = build_constraints(
        train, dictionary, fixed_edges(), LLMSettings(backend="offline"), ConstraintSettings(), tmp_path / "audit"
    )
    preprocessor = Preprocessor().fit(train, dictionary)
    synthetic = inputs["synthetic"].copy()
    synthetic.insert(0, "split", "train")
    settings = ValidationSettings(sample_rows=20, prompt_rows=3, reference_rows=50, max_repair_attempts=2)
    stub.script = repair_script("record_plausibility", {"score": 1.5, "doubted_features": [{"feature": "ghost", "reason": "odd"}]})

    with pytest.raises(ValidationReplyError, match="after 3 requests"):
        validate_generator(
            synthetic, train, dictionary, constraint_set, preprocessor, settings, llm_settings(stub, tmp_path),
            "wgan", SEED, 10, environ={"ANTHROPIC_API_KEY": "test-key"},
        )

    assert len(stub.requests) == 3
    assert digest([request["body"] for request in stub.requests]) == EXPECTED["validation_requests"]



def test_constraint_cache_file_unchanged(stub, tmp_path):
    frame = aria_frame()
    dictionary = make_dictionary()
    kinds = dict(zip(dictionary["name"], dictionary["kind"]))
    derived = offline.derive_constraints(frame, kinds, make_ranges(frame), fixed_edges(), ConstraintSettings())
    sections = {key: derived["Aria"][key] for key in SECTIONS}
    call = {"type": "tool_use", "id": "toolu_01", "name": "record_constraints", "input": sections}
    stub.script = [message([call], "tool_use")]

    constraint_set = build_constraints(
        frame, dictionary, fixed_edges(), llm_settings(stub, tmp_path), ConstraintSettings(), tmp_path / "audit",
        environ={"ANTHROPIC_API_KEY": "test-key"},
    )

    key = EXPECTED["constraint_cache_key"]
    assert constraint_set.sections("Aria")["metadata"]["prompt_hash"] == key
    record = cached_record(tmp_path / "cache" / "constraints" / f"{key}.json")
    assert list(record) == ["key", "device_type", "model", "created", "requests", "sections", "replies"]
    assert record["key"] == key
    assert record["sections"] == sections
    assert record["requests"] == 1


def test_validation_cache_file_unchanged(stub, tmp_path):
    inputs = validation_inputs()
    train, dictionary = inputs["train"], inputs["dictionary"]
    constraint_set = build_constraints(
        train, dictionary, fixed_edges(), LLMSettings(backend="offline"), ConstraintSettings(), tmp_path / "audit"
    )
    preprocessor = Preprocessor().fit(train, dictionary)
    synthetic = inputs["synthetic"].copy()
    synthetic.insert(0, "split", "train")
    settings = ValidationSettings(sample_rows=20, prompt_rows=3, reference_rows=50)
    reply = {"score": 0.5, "doubted_features": [{"feature": "pkt_size", "reason": "too wide"}]}
    stub.script = [message([{"type": "tool_use", "id": "toolu_01", "name": "record_plausibility", "input": reply}], "tool_use")]

    document = validate_generator(
        synthetic, train, dictionary, constraint_set, preprocessor, settings, llm_settings(stub, tmp_path),
        "wgan", SEED, 10, environ={"ANTHROPIC_API_KEY": "test-key"},
    )

    key = document["device_types"]["Aria"]["cache_key"]
    assert key == EXPECTED["validation_stage_cache_key"]
    record = cached_record(tmp_path / "cache" / "validation" / f"{key}.json")
    assert list(record) == ["key", "device_type", "model", "created", "requests", "reply", "replies"]
    assert record["reply"] == reply
    assert record["requests"] == 1
