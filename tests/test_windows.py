"""Windows of consecutive packets: grouping, the two decision methods and the stage."""

import numpy as np
import pandas as pd
import pytest

from iotsynth.classify.windows import (
    prediction_frame,
    run_windows_stage,
    window_decisions,
    window_ids,
    window_table,
)

CLASSES = np.array(["Cam", "Plug"])


def predictions(rows):
    """Build a prediction table from (capture, frame, device type, predicted, score of Cam)."""
    frame = pd.DataFrame(rows, columns=["capture", "frame", "device_type", "rf", "rf:Cam"])
    frame["rf:Plug"] = 1.0 - frame["rf:Cam"]
    return frame


def test_windows_follow_frames_and_stay_in_one_capture():
    # Capture a has 7 test packets (two windows of 3, one left out), b has 3 (one window), c has 2 (none).
    frame = predictions(
        [("a", number, "Cam", "Cam", 0.9) for number in (10, 2, 7, 30, 4, 15, 21)]
        + [("b", number, "Plug", "Plug", 0.1) for number in (5, 1, 3)]
        + [("c", number, "Plug", "Plug", 0.1) for number in (1, 2)]
    )
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    ids = window_ids(frame, 3)

    assert sorted(set(ids)) == [-1, 0, 1, 2]
    for window in (0, 1, 2):
        members = frame[ids == window]
        assert len(members) == 3
        assert members["capture"].nunique() == 1
    first_a = sorted(frame.loc[(frame["capture"] == "a") & (ids >= 0), "frame"])
    assert first_a == [2, 4, 7, 10, 15, 21]
    assert set(frame.loc[ids == -1, "frame"]) == {30, 1, 2}
    windows_of_a = frame[frame["capture"] == "a"].assign(window=ids[frame["capture"] == "a"])
    assert set(windows_of_a.loc[windows_of_a["frame"].isin([2, 4, 7]), "window"]) == {0}


def test_vote_majority_and_tie_break():
    frame = predictions(
        [
            # window 0: two Plug votes beat one confident Cam.
            ("a", 1, "Cam", "Plug", 0.4), ("a", 2, "Cam", "Plug", 0.45), ("a", 3, "Cam", "Cam", 0.99),
            # window 1 (k=2 below): one vote each; mean Cam score 0.55 > 0.45 gives Cam.
            ("b", 1, "Cam", "Plug", 0.4), ("b", 2, "Cam", "Cam", 0.7),
        ]
    )
    truth, predicted = window_decisions(frame[frame["capture"] == "a"], "rf", 3, "vote")
    assert list(predicted) == ["Plug"]
    _, predicted = window_decisions(frame[frame["capture"] == "a"], "rf", 3, "mean_score")
    assert list(predicted) == ["Cam"]  # mean Cam score 0.61
    _, predicted = window_decisions(frame[frame["capture"] == "b"], "rf", 2, "vote")
    assert list(predicted) == ["Cam"]
    assert list(truth) == ["Cam"]


def test_size_one_equals_per_packet_scores():
    rng = np.random.default_rng(0)
    truth = rng.choice(CLASSES, 200)
    guess = np.where(rng.random(200) < 0.7, truth, rng.choice(CLASSES, 200))
    frame = predictions(
        [(f"cap{index % 9}", index, t, g, 0.8 if g == "Cam" else 0.2) for index, (t, g) in enumerate(zip(truth, guess))]
    )
    table = window_table(frame, ["rf"], [1], ["vote", "mean_score"])
    assert (table["windows"] == 200).all()
    assert table["accuracy"].tolist() == pytest.approx([np.mean(truth == guess)] * 2)


def test_longer_windows_correct_noisy_packets():
    rng = np.random.default_rng(1)
    rows = []
    for capture in range(20):
        device_type = CLASSES[capture % 2]
        for number in range(40):
            right = rng.random() < 0.7
            guess = device_type if right else CLASSES[1 - capture % 2]
            rows.append((f"cap{capture}", number, device_type, guess, 0.8 if guess == "Cam" else 0.2))
    table = window_table(predictions(rows), ["rf"], [1, 13], ["vote"]).set_index("k")
    assert table.loc[13, "macro_f1"] > table.loc[1, "macro_f1"] + 0.15
    assert table.loc[13, "windows"] == 20 * 3
    assert table.loc[13, "captures"] == 20


def test_prediction_frame_keeps_real_rows_only():
    test = pd.DataFrame({"capture": ["a", "a", ""], "frame": [1, 2, 0], "device_type": ["Cam", "Cam", "Plug"],
                         "synthetic": [False, False, True]})
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    frame = prediction_frame(test, {"rf": (np.array(["Cam", "Plug", "Plug"]), CLASSES, scores)})
    assert len(frame) == 2
    assert frame["rf"].tolist() == ["Cam", "Plug"]
    assert frame["rf:Plug"].tolist() == pytest.approx([0.1, 0.8])


def test_prediction_frame_without_capture_column_names_it():
    test = pd.DataFrame({"frame": [1], "device_type": ["Cam"]})
    with pytest.raises(ValueError, match="capture"):
        prediction_frame(test, {"rf": (np.array(["Cam"]), CLASSES, np.array([[1.0, 0.0]]))})


def test_bad_window_size_and_method_are_named():
    frame = predictions([("a", 1, "Cam", "Cam", 0.9)])
    with pytest.raises(ValueError, match="at least 1"):
        window_ids(frame, 0)
    with pytest.raises(ValueError, match="windows.methods"):
        window_decisions(frame, "rf", 1, "median")


def test_stage_rows_per_setting(tmp_path):
    rows = []
    for index in range(40):
        device_type = CLASSES[index % 2]
        rows.append((f"cap{index % 4}", index, device_type, device_type, 0.6 if device_type == "Cam" else 0.4))
    frame = predictions(rows)
    paths = {}
    for pair in (("none", "real_test"), ("smote", "real_test")):
        paths[pair] = tmp_path / f"{pair[0]}.parquet"
        frame.to_parquet(paths[pair], index=False)
    table = run_windows_stage(paths, {"sizes": [1, 5, 50], "methods": ["vote", "mean_score"]},
                              str(tmp_path / "windowed"))
    written = pd.read_csv(tmp_path / "windowed.csv")
    assert len(written) == 2 * 3 * 2
    assert (tmp_path / "windowed.md").is_file()
    assert written.loc[written["k"] == 5, "accuracy"].eq(1.0).all()
    # No capture has 50 test packets, so k=50 has no window and no score.
    assert (table.loc[table["k"] == 50, "windows"] == 0).all()
    assert table.loc[table["k"] == 50, "macro_f1"].isna().all()
