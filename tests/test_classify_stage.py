"""Tests of the evaluate and tables stages (iotsynth.classify.evaluate, iotsynth.classify.tables)."""

import json

import numpy as np
import pandas as pd
import pytest

from iotsynth.classify.evaluate import evaluate_classifiers, per_class_table, read_splits, run_evaluation_stage
from iotsynth.classify.svm_check import compare_solvers
from iotsynth.classify.tables import (
    comparison_table,
    published_layout,
    read_metrics,
    read_reference,
    run_tables_stage,
    table_stems,
)
from iotsynth.gan.toydata import make_packet_table
from iotsynth.preprocess import Preprocessor

SECTION = {
    "balancings": ["none", "smote"],
    "protocols": ["paper", "real_test"],
    "models": ["rf", "nn", "svm"],
    "memory_interval": 0.02,
    "rf": {"n_estimators": 10, "max_depth": None, "min_samples_leaf": 1, "max_features": "sqrt",
           "class_weight": None},
    "nn": {"hidden_layers": [32], "dropout": 0.0, "batch_size": 64, "learning_rate": 1e-2, "weight_decay": 0.0,
           "max_epochs": 5, "patience": 2, "threads": 1},
    "svm": {"solver": "fast", "C": 1.0, "gamma": "scale", "n_components": 100,
            "max_train_rows": None, "cache_mb": 100},
}
PUBLISHED = "Alyoubi et al., Sensors 25(24):7457, 2025"


@pytest.fixture(scope="module")
def splits():
    frame, dictionary = make_packet_table(900, n_device_types=3, seed=5)
    order = np.random.default_rng(0).permutation(len(frame))
    parts = np.split(order, [int(0.6 * len(frame)), int(0.8 * len(frame))])
    splits = {name: frame.iloc[rows].reset_index(drop=True) for name, rows in zip(("train", "val", "test"), parts)}
    return splits, Preprocessor().fit(splits["train"], dictionary)


@pytest.fixture(scope="module")
def evaluation(splits, tmp_path_factory):
    """One run of the evaluate stage on the real toy splits."""
    frames, preprocessor = splits
    folder = tmp_path_factory.mktemp("evaluate")
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    preprocessor.save(folder / "preprocessor.json")
    outputs = {
        "metrics": folder / "metrics" / "none" / "paper.json",
        "per_class": folder / "metrics" / "none" / "paper_per_class.csv",
        "figure": folder / "figures" / "figure13_confusion_none_paper.png",
        "predictions": folder / "predictions" / "none" / "paper.parquet",
    }
    outputs["predictions"].parent.mkdir(parents=True)
    document = run_evaluation_stage(paths, folder / "preprocessor.json", outputs["metrics"], outputs["per_class"],
                                    outputs["figure"], "none", "paper", SECTION, seed=0, threads=1,
                                    predictions_path=outputs["predictions"])
    return document, outputs


def test_every_classifier_scores(splits):
    frames, preprocessor = splits
    result = evaluate_classifiers(frames, preprocessor, {**SECTION, "models": ["rf", "svm"]}, seed=0)
    assert list(result["classifiers"]) == ["rf", "svm"]
    for scores in result["classifiers"].values():
        assert scores["accuracy"] > 0.5
        assert scores["train_seconds"] > 0
        assert scores["peak_memory_mb"] >= 0
        assert len(scores["confusion"]) == len(result["labels"])
        assert sum(map(sum, scores["confusion"])) == len(frames["test"])


def test_stage_writes_metrics_file(evaluation):
    document, outputs = evaluation
    written = json.loads(outputs["metrics"].read_text())
    assert written["balancing"] == "none"
    assert written["protocol"] == "paper"
    assert list(written["classifiers"]) == ["rf", "nn", "svm"]
    assert written["rows"]["train"]["synthetic"] == 0
    assert written["classifiers"]["nn"]["details"]["epochs_run"] <= 5
    assert written["classifiers"]["rf"]["accuracy"] == document["classifiers"]["rf"]["accuracy"]


def test_stage_writes_per_class_and_figure(evaluation):
    document, outputs = evaluation
    table = pd.read_csv(outputs["per_class"])
    assert list(table.columns) == ["device_type", "support", "rf", "nn", "svm"]
    assert table["device_type"].tolist() == document["labels"]
    assert table.equals(per_class_table(document).astype(table.dtypes.to_dict()))
    assert outputs["figure"].stat().st_size > 10_000


def test_stage_writes_predictions_that_match_the_scores(evaluation, splits):
    document, outputs = evaluation
    frames, _ = splits
    predictions = pd.read_parquet(outputs["predictions"])
    assert len(predictions) == len(frames["test"])
    assert (predictions["device_type"].to_numpy() == frames["test"]["device_type"].astype(str).to_numpy()).all()
    for name in ("rf", "nn", "svm"):
        accuracy = (predictions[name] == predictions["device_type"]).mean()
        assert accuracy == pytest.approx(document["classifiers"][name]["accuracy"])
        scores = predictions[[column for column in predictions.columns if column.startswith(f"{name}:")]]
        assert scores.shape[1] == len(document["labels"])
    probabilities = predictions[[column for column in predictions.columns if column.startswith("rf:")]]
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_read_splits_marks_real_rows(tmp_path, splits):
    frames, _ = splits
    paths = {}
    for name, frame in frames.items():
        paths[name] = tmp_path / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    read = read_splits(paths)
    assert not read["train"]["synthetic"].any()


def fake_metrics(folder, balancing, protocol, accuracy):
    """Write a metrics file with the keys the tables stage reads."""
    classifiers = {}
    for offset, name in enumerate(("rf", "nn", "svm")):
        classifiers[name] = {"accuracy": accuracy - offset / 100, "precision": 0.9, "recall": accuracy - offset / 100,
                             "f1": 0.85, "macro_f1": 0.7, "balanced_accuracy": 0.75,
                             "train_seconds": 10.0 + offset, "peak_memory_mb": 100.0 + offset}
    document = {"balancing": balancing, "protocol": protocol, "classifiers": classifiers,
                "rows": {"train": {"real": 100, "synthetic": 50}, "test": {"real": 30, "synthetic": 0}}}
    path = folder / f"{balancing}_{protocol}.json"
    path.write_text(json.dumps(document))
    return path


def reference_file(folder):
    path = folder / "paper_results.csv"
    rows = [
        ["8", "smote", "paper", "RF", "accuracy", "0.9246", PUBLISHED],
        ["8", "smote", "paper", "NN", "accuracy", "", ""],
        ["", "", "paper", "SVM", "train_seconds", "26513", PUBLISHED + " (table not recorded)"],
    ]
    pd.DataFrame(rows, columns=["table", "balancing", "protocol", "classifier", "metric", "value", "source"]).to_csv(
        path, index=False)
    return path


def test_published_layout_rows_and_columns(tmp_path):
    long = read_metrics({("smote", "paper"): fake_metrics(tmp_path, "smote", "paper", 0.93)})
    table = published_layout(long, "smote", "paper")
    assert table["Classifier"].tolist() == ["RF", "NN", "SVM"]
    assert list(table.columns) == ["Classifier", "Accuracy", "Precision", "Recall", "F1-score",
                                   "Training time (s)", "Memory (MB)"]
    assert table.loc[0, "Accuracy"] == 0.93


def test_mismatched_metrics_file_raises(tmp_path):
    path = fake_metrics(tmp_path, "smote", "paper", 0.9)
    with pytest.raises(ValueError, match="expected 'wgan'"):
        read_metrics({("wgan", "paper"): path})


def test_comparison_difference(tmp_path):
    long = read_metrics({("smote", "paper"): fake_metrics(tmp_path, "smote", "paper", 0.9)})
    table = comparison_table(long, read_reference(reference_file(tmp_path)))

    rf = table[(table["classifier"] == "RF") & (table["metric"] == "accuracy")].iloc[0]
    assert rf["published"] == "0.9246"
    assert rf["ours"] == "0.9000"
    assert rf["difference"] == "-0.0246"
    nn = table[table["classifier"] == "NN"].iloc[0]
    assert nn["published"] == "not recorded"
    assert nn["difference"] == ""
    svm = table[table["metric"] == "train_seconds"].iloc[0]
    assert svm["ours"] == "smote: 12.0"


def test_tables_stage_writes_every_file(tmp_path):
    pairs = [("none", "paper"), ("none", "real_test"), ("smote", "paper"), ("smote", "real_test")]
    paths = {pair: fake_metrics(tmp_path, *pair, accuracy=0.9) for pair in pairs}
    folder = tmp_path / "tables"
    long = run_tables_stage(paths, reference_file(tmp_path), folder, folder / "paper_comparison.md")

    assert len(long) == 12
    for stem in table_stems(["none", "smote"], ["paper", "real_test"]):
        assert (folder / f"{stem}.csv").is_file(), stem
        assert (folder / f"{stem}.md").is_file(), stem
    assert not (folder / "table07_wgan.csv").exists()
    comparison = (folder / "paper_comparison.md").read_text()
    assert "0.9246" in comparison
    assert PUBLISHED in comparison


def test_table_stems_follow_configuration():
    assert table_stems(["wgan", "smote"], ["paper"]) == [
        "table07_wgan", "table08_smote", "classifiers_wgan_paper", "classifiers_smote_paper", "classifiers_summary"]
    assert "table07_wgan" not in table_stems(["wgan"], ["real_test"])


def test_solver_comparison_rows(splits):
    frames, preprocessor = splits
    table = compare_solvers(frames["train"], frames["test"], preprocessor, rows=200,
                            settings={"C": 1.0, "gamma": "scale", "n_components": 50})
    assert table["solver"].tolist() == ["fast", "exact"]
    assert (table["train_rows"] <= 200).all()
    assert (table["test_rows"] == len(frames["test"])).all()
    assert (table["accuracy"] > 0.5).all()
