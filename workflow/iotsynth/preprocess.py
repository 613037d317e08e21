"""Scale and encode packet features for the generators, and invert the mapping.

:class:`Preprocessor` turns the feature columns of a packet table into one
float64 array: continuous and discrete features scaled so the training range
maps to [-1, 1], binary features to -1 and 1, and categorical features one-hot.
It is fitted on the training split only and saved as JSON that
``workflow/schemas/preprocessor.schema.json`` describes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

FORMAT_NAME = "iotsynth-preprocessor"
FORMAT_VERSION = 1
KINDS = ("continuous", "discrete", "binary", "categorical")
SCALED_KINDS = ("continuous", "discrete")
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "preprocessor.schema.json"
REFIT_HINT = "Refit it by rerunning the preprocess rule"


class Preprocessor:
    """Map packet features to [-1, 1] and one-hot columns, and back.

    Attributes
    ----------
    layout_ : list of dict
        One entry per feature in dictionary order, with ``name``, ``kind``,
        ``dtype`` (``int64`` or ``float64``, restored by
        :meth:`inverse_transform`), ``start`` and ``stop`` (its columns of the
        transformed array), and ``minimum`` and ``maximum`` (continuous and
        discrete) or ``categories`` (categorical). Set by :meth:`fit`.
    n_columns_ : int
        Width of the transformed array.
    """

    def fit(self, frame: pd.DataFrame, dictionary: pd.DataFrame) -> Preprocessor:
        """Learn ranges and categories from the training rows.

        Parameters
        ----------
        frame : pandas.DataFrame
            Training rows with every feature column named in ``dictionary``.
            Other columns (``capture``, ``device_type``, ...) are ignored.
        dictionary : pandas.DataFrame
            The feature dictionary, with at least the columns ``name`` and
            ``kind``.

        Returns
        -------
        Preprocessor
            This object, fitted.

        Raises
        ------
        ValueError
            If the dictionary is malformed, or a feature is missing,
            non-numeric, not finite, or has values its kind does not allow.
        """
        kinds = _read_kinds(dictionary)
        features = _select_features(frame, list(kinds), "fit")

        layout = []
        start = 0
        for name, kind in kinds.items():
            entry = _fit_feature(name, kind, features[name], start)
            layout.append(entry)
            start = entry["stop"]

        self.layout_ = layout
        return self

    @property
    def n_columns_(self) -> int:
        self._check_fitted()
        return self.layout_[-1]["stop"]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Scale and encode feature columns.

        Values outside the training range map outside [-1, 1], with no
        clipping. A categorical value unseen in training gives a row of zeros
        in its group.

        The output is float64 because 32-bit fields (TCP sequence numbers,
        BOOTP xid) need more than float32's 24 significant bits to come back
        exactly; generators cast to float32 themselves.

        Parameters
        ----------
        frame : pandas.DataFrame
            Rows with every feature column; other columns are ignored.

        Returns
        -------
        numpy.ndarray of shape (n_rows, n_columns_), float64

        Raises
        ------
        ValueError
            If a feature is missing or not finite, or a binary feature contains
            a value other than 0 and 1.
        """
        self._check_fitted()
        names = [entry["name"] for entry in self.layout_]
        features = _select_features(frame, names, "transform")

        output = np.zeros((len(frame), self.n_columns_), dtype=np.float64)
        for entry in self.layout_:
            values = features[entry["name"]].to_numpy(dtype=np.float64)
            output[:, entry["start"] : entry["stop"]] = _encode(entry, values)
        return output

    def inverse_transform(self, array: np.ndarray) -> pd.DataFrame:
        """Decode a transformed array into feature columns in original units.

        Continuous and discrete columns are unscaled. Discrete features and
        features stored as integers are rounded to the nearest integer.
        Binary columns become 1 above 0 and 0 otherwise. Each categorical
        group becomes the category of its largest column (the first category
        on ties, including an all-zero group). Integer features come back as
        int64 and others as float64.

        Parameters
        ----------
        array : array-like of shape (n_rows, n_columns_)
            Transformed rows, e.g. generator output.

        Returns
        -------
        pandas.DataFrame
            The feature columns in dictionary order, with a ``RangeIndex``.

        Raises
        ------
        ValueError
            If the array has the wrong shape or contains NaN or infinity.
        """
        self._check_fitted()
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.n_columns_:
            raise ValueError(
                f"inverse_transform expects an array of shape (n_rows, {self.n_columns_}), "
                f"got shape {array.shape}"
            )
        bad_columns = np.flatnonzero(~np.isfinite(array).all(axis=0))
        if len(bad_columns) > 0:
            raise ValueError(
                f"inverse_transform input contains NaN or infinity in columns "
                f"{bad_columns[:10].tolist()}; check the generator output"
            )

        decoded = {
            entry["name"]: _decode(entry, array[:, entry["start"] : entry["stop"]])
            for entry in self.layout_
        }
        return pd.DataFrame(decoded)

    def save(self, path: str | Path) -> None:
        """Write the fitted preprocessor as JSON, creating parent folders."""
        self._check_fitted()
        document = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "n_columns": self.n_columns_,
            "features": self.layout_,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        """Read a preprocessor written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not valid JSON, breaks the schema (the message
            names the key and its path) or has an inconsistent layout.
        """
        path = Path(path)
        document = _parse_json(path)
        validate_document(document, path)

        preprocessor = cls()
        preprocessor.layout_ = document["features"]
        return preprocessor

    def _check_fitted(self) -> None:
        if not hasattr(self, "layout_"):
            raise RuntimeError("this Preprocessor is not fitted; call fit or Preprocessor.load first")


def _read_kinds(dictionary: pd.DataFrame) -> dict[str, str]:
    """Return the feature kinds by name, in dictionary order."""
    missing = [column for column in ("name", "kind") if column not in dictionary]
    if missing:
        raise ValueError(f"the feature dictionary is missing the columns {missing}")
    if len(dictionary) == 0:
        raise ValueError("the feature dictionary has no rows")

    duplicated = dictionary["name"][dictionary["name"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"the feature dictionary lists these names twice: {duplicated}")

    kinds = dict(zip(dictionary["name"].astype(str), dictionary["kind"].astype(str)))
    for name, kind in kinds.items():
        if kind not in KINDS:
            raise ValueError(f"feature {name!r} has kind {kind!r}; use one of {list(KINDS)}")
    return kinds


def _select_features(frame: pd.DataFrame, names: list[str], step: str) -> pd.DataFrame:
    """Return the feature columns after checking they are present, numeric and finite."""
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{step}: the frame is missing {len(missing)} feature columns, e.g. {missing[:5]}"
        )

    features = frame[names]
    for name in names:
        column = features[name]
        if not pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            raise ValueError(
                f"{step}: feature {name!r} has dtype {column.dtype}; feature columns must be numeric"
            )
        n_bad = int((~np.isfinite(column.to_numpy(dtype=np.float64))).sum())
        if n_bad > 0:
            raise ValueError(f"{step}: feature {name!r} has {n_bad} missing or infinite values")
    return features


def _fit_feature(name: str, kind: str, column: pd.Series, start: int) -> dict:
    """Return the layout entry of one feature fitted on its training values."""
    is_integer = pd.api.types.is_integer_dtype(column) or pd.api.types.is_bool_dtype(column)
    entry = {"name": name, "kind": kind, "dtype": "int64" if is_integer else "float64"}
    values = column.to_numpy(dtype=np.float64)

    if kind in SCALED_KINDS:
        to_json_number = int if is_integer else float
        entry.update(
            start=start,
            stop=start + 1,
            minimum=to_json_number(values.min()),
            maximum=to_json_number(values.max()),
        )
    elif kind == "binary":
        _check_binary(name, values, "fit")
        entry.update(start=start, stop=start + 1)
    else:
        if not np.array_equal(values, np.round(values)):
            raise ValueError(f"fit: categorical feature {name!r} contains non-integer codes")
        categories = np.unique(values).astype(np.int64).tolist()
        entry.update(start=start, stop=start + len(categories), categories=categories)
    return entry


def _check_binary(name: str, values: np.ndarray, step: str) -> None:
    invalid = np.setdiff1d(values, [0.0, 1.0])
    if len(invalid) > 0:
        raise ValueError(
            f"{step}: binary feature {name!r} contains values other than 0 and 1, "
            f"e.g. {invalid[:5].tolist()}"
        )


def _encode(entry: dict, values: np.ndarray) -> np.ndarray:
    """Return the transformed columns of one feature, of shape (n_rows, width)."""
    kind = entry["kind"]
    if kind in SCALED_KINDS:
        span = entry["maximum"] - entry["minimum"]
        if span == 0:
            return np.zeros((len(values), 1))
        return (2.0 * (values - entry["minimum"]) / span - 1.0)[:, None]

    if kind == "binary":
        _check_binary(entry["name"], values, "transform")
        return (2.0 * values - 1.0)[:, None]

    categories = pd.Index(np.asarray(entry["categories"], dtype=np.float64))
    codes = categories.get_indexer(values)
    one_hot = np.zeros((len(values), len(categories)))
    seen = codes >= 0
    one_hot[np.flatnonzero(seen), codes[seen]] = 1.0
    return one_hot


def _decode(entry: dict, block: np.ndarray) -> np.ndarray:
    """Return one feature's values from its transformed columns."""
    kind = entry["kind"]
    if kind in SCALED_KINDS:
        minimum = entry["minimum"]
        span = entry["maximum"] - minimum
        values = minimum + (block[:, 0] + 1.0) / 2.0 * span
        if kind == "discrete" or entry["dtype"] == "int64":
            values = np.rint(values)
    elif kind == "binary":
        values = (block[:, 0] > 0).astype(np.float64)
    else:
        categories = np.asarray(entry["categories"], dtype=np.int64)
        values = categories[np.argmax(block, axis=1)]
    return values.astype(entry["dtype"])


def _parse_json(path: Path) -> object:
    def reject_constant(constant: str) -> None:
        raise ValueError(f"{path}: {constant} is not a valid number in a preprocessor file")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"preprocessor file {path} not found; run the preprocess rule to fit one"
        ) from None
    try:
        return json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def validate_document(document: object, path: str | Path = "<preprocessor>") -> None:
    """Check a preprocessor document against the schema and its own layout.

    Parameters
    ----------
    document : object
        Parsed JSON.
    path : str or pathlib.Path
        File name used in error messages.

    Raises
    ------
    ValueError
        On the first problem found, naming the key path (e.g.
        ``features/3/start``) and what is wrong.
    """
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        location = "/".join(str(part) for part in error.absolute_path) or "top level"
        message = error.message
        # The schema forbids a key of another kind (``categories`` on a scaled
        # feature, ``minimum`` on a categorical one) with the empty "not" schema.
        if error.validator == "not" and error.validator_value == {}:
            message = "this key does not belong to a feature of this kind"
        raise ValueError(
            f"{path}: invalid preprocessor file at {location}: {message}. {REFIT_HINT}"
        )

    _check_layout(document, path)


def _check_layout(document: dict, path: str | Path) -> None:
    """Check that feature columns are contiguous and consistent with n_columns."""
    names = set()
    expected_start = 0
    for index, entry in enumerate(document["features"]):
        location = f"features/{index}"
        if entry["name"] in names:
            raise ValueError(
                f"{path}: {location}/name {entry['name']!r} appears twice. {REFIT_HINT}"
            )
        names.add(entry["name"])

        width = len(entry["categories"]) if entry["kind"] == "categorical" else 1
        if entry["start"] != expected_start or entry["stop"] != expected_start + width:
            raise ValueError(
                f"{path}: {location} has start {entry['start']} and stop {entry['stop']}; "
                f"expected {expected_start} and {expected_start + width}. {REFIT_HINT}"
            )
        if entry["kind"] in SCALED_KINDS and entry["minimum"] > entry["maximum"]:
            raise ValueError(f"{path}: {location} has minimum above maximum. {REFIT_HINT}")
        expected_start += width

    if document["n_columns"] != expected_start:
        raise ValueError(
            f"{path}: n_columns is {document['n_columns']} but the features "
            f"fill {expected_start} columns. {REFIT_HINT}"
        )


def fit_preprocessor(
    train_path: str | Path, dictionary_path: str | Path, output_path: str | Path
) -> Preprocessor:
    """Fit a preprocessor on the training split and save it.

    Parameters
    ----------
    train_path : str or pathlib.Path
        Training split (``results/splits/train.parquet``).
    dictionary_path : str or pathlib.Path
        Feature dictionary CSV.
    output_path : str or pathlib.Path
        Where the JSON goes (``results/preprocess/preprocessor.json``).

    Returns
    -------
    Preprocessor
        The fitted preprocessor.
    """
    train = pd.read_parquet(train_path)
    dictionary = pd.read_csv(dictionary_path)
    logger.info("read %s: %d rows; %s: %d features", train_path, len(train), dictionary_path, len(dictionary))

    preprocessor = Preprocessor().fit(train, dictionary)
    preprocessor.save(output_path)

    layout = preprocessor.layout_
    by_kind = pd.Series([entry["kind"] for entry in layout]).value_counts().to_dict()
    constant = [
        entry["name"]
        for entry in layout
        if entry["kind"] in SCALED_KINDS and entry["minimum"] == entry["maximum"]
    ]
    logger.info("features by kind: %s", by_kind)
    logger.info("%d features are constant in training and map to 0: %s", len(constant), constant)
    logger.info("wrote %s: %d output columns", output_path, preprocessor.n_columns_)
    return preprocessor
