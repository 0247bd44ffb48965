"""Loading one labelled data set (built-in, CSV or NPZ), validated once.

Everything the rest of privtune needs from a data set is a
:class:`LabelledData`: a finite float32 feature matrix, int64 class ids
``0..C-1`` and the names of both. Loading is where bad data is caught (NaN,
a single class, labels that are not class ids, mismatched shapes, a missing
label column), with a :class:`~tuner.errors.DataError` that says what to fix.

CSV files are encoded without pandas: numeric columns standardized with the
training file's mean and standard deviation (missing values imputed with its
median, constant columns kept as 0), other columns one-hot encoded with the
training file's categories (a missing value is a category of its own; a
category seen only in the test file encodes as all zeros). Stray spaces are
stripped everywhere, and label spellings that differ only by a trailing dot
(``>50K.`` in UCI Adult's test file) are the same class.

Example:
    >>> from tuner.config import DataConfig
    >>> data = load_data(DataConfig(name="digits"))
    >>> data.n_rows, data.n_features, data.n_classes
    (1797, 64, 10)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuner.errors import DataError

if TYPE_CHECKING:
    from tuner.config import DataConfig

DATA_SOURCES = ("builtin", "csv", "npz", "python")
MISSING_CATEGORY = "<missing>"


@dataclass(frozen=True, eq=False)
class LabelledData:
    """A labelled data set, ready to split into roles.

    Args:
        X: float32 features of shape ``(n, d)``, all finite.
        y: int64 class ids of shape ``(n,)``, in ``0..len(class_names)-1``.
        feature_names: one name per column of ``X``.
        class_names: the original label spellings; index = class id.
        name: a short name for reports.
        test: a user-supplied test split, encoded the same way, or ``None``.
        input_shape: the shape of one record before it was flattened into a
            row of ``X`` (e.g. ``(1, 28, 28)`` for images from a user's
            loader); ``None`` means a flat record of ``n_features``.

    Raises:
        DataError: shapes disagree, ``X`` holds NaN/inf, or ``y`` holds ids
            outside ``0..C-1``.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    name: str
    test: LabelledData | None = field(default=None)
    input_shape: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        X = np.asarray(self.X, dtype=np.float32)
        y = np.asarray(self.y)
        if X.ndim != 2:
            raise DataError(
                f"{self.name}: X must be a 2-D array (rows, features), but has shape {X.shape}"
            )
        if y.ndim != 1 or len(y) != len(X):
            raise DataError(
                f"{self.name}: X has {len(X)} rows but y has shape {y.shape}; "
                "X and y must hold one row and one label per record"
            )
        bad = ~np.isfinite(X)
        if bad.any():
            first = int(np.argwhere(bad)[0, 0])
            raise DataError(
                f"{self.name}: X holds {int(bad.sum())} NaN or infinite values (first in row {first}); "
                "impute or drop those values before loading"
            )
        if len(self.feature_names) != X.shape[1]:
            raise DataError(
                f"{self.name}: {len(self.feature_names)} feature names for {X.shape[1]} columns"
            )
        if y.size and (
            not np.issubdtype(y.dtype, np.integer)
            or y.min() < 0
            or y.max() >= len(self.class_names)
        ):
            raise DataError(f"{self.name}: y must hold class ids 0..{len(self.class_names) - 1}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y.astype(np.int64))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.input_shape is not None:
            shape = tuple(int(d) for d in self.input_shape)
            if int(np.prod(shape)) != X.shape[1]:
                raise DataError(
                    f"{self.name}: records of shape {shape} do not flatten to the {X.shape[1]} columns of X"
                )
            object.__setattr__(self, "input_shape", shape)

    @property
    def n_rows(self) -> int:
        """Number of records (the separate test split not counted)."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (the length of ``class_names``)."""
        return len(self.class_names)

    def fingerprint(self) -> str:
        """sha256 hex of the features and labels (and the test split's): identifies the data in exports."""
        digest = hashlib.sha256()
        part: LabelledData | None = self
        while part is not None:
            digest.update(repr((part.X.shape, part.class_names)).encode())
            digest.update(np.ascontiguousarray(part.X).tobytes())
            digest.update(np.ascontiguousarray(part.y).tobytes())
            part = part.test
        return digest.hexdigest()


def _load_digits() -> LabelledData:
    from sklearn.datasets import load_digits

    raw = load_digits()
    return LabelledData(
        X=raw.data / 16.0,  # pixel intensities 0..16 -> [0, 1]
        y=raw.target,
        feature_names=tuple(raw.feature_names),
        class_names=tuple(str(c) for c in raw.target_names),
        name="digits",
    )


def _load_breast_cancer() -> LabelledData:
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    X = (raw.data - raw.data.mean(axis=0)) / raw.data.std(axis=0)
    return LabelledData(
        X=X,
        y=raw.target,
        feature_names=tuple(raw.feature_names),
        class_names=tuple(str(c) for c in raw.target_names),
        name="breast_cancer",
    )


BUILTIN_DATASETS: dict[str, Callable[[], LabelledData]] = {
    "digits": _load_digits,
    "breast_cancer": _load_breast_cancer,
}


def load_data(spec: DataConfig, *, base_dir: Path | None = None) -> LabelledData:
    """Load and validate the data set a :class:`~tuner.config.DataConfig` names.

    Args:
        spec: the ``data`` section of the config.
        base_dir: folder that relative paths resolve against (default: the
            current folder; paths from a config file are already absolute).

    Raises:
        DataError: the file is missing or unreadable, or the data is unusable.
    """
    if spec.source == "builtin":
        data = BUILTIN_DATASETS[spec.name]()
    elif spec.source == "python":
        from tuner.user_code import load_python_data

        data = load_python_data(spec, base_dir=base_dir)
    else:
        path = _resolve(spec.path, base_dir, "data.path")
        test_path = (
            None if spec.test_path is None else _resolve(spec.test_path, base_dir, "data.test_path")
        )
        if spec.source == "csv":
            if not spec.target:
                raise DataError("data.target must name the label column of a CSV file")
            data = _load_csv(
                path, test_path, target=spec.target, missing=frozenset(spec.missing_values)
            )
        elif spec.source == "npz":
            data = _load_npz(path, test_path)
        else:
            raise DataError(
                f"data.source must be one of {list(DATA_SOURCES)}, but got {spec.source!r}"
            )
    present = np.unique(data.y)
    if len(present) < 2:
        only = data.class_names[int(present[0])] if len(present) else "none"
        raise DataError(
            f"{data.name}: the labels hold a single class ({only!r}); training and membership "
            "inference need at least 2 classes: check the label column (data.target) or the file"
        )
    return data


def _resolve(path: Path | None, base_dir: Path | None, key: str) -> Path:
    if path is None:
        raise DataError(f"{key} must name a file for this data source")
    path = Path(path).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        raise DataError(
            f"{key}: file not found: {path}; relative paths resolve against the config file's folder"
        )
    return path


# --- NPZ ---------------------------------------------------------------------


def _load_npz(path: Path, test_path: Path | None) -> LabelledData:
    X, y = _read_npz(path)
    classes, y_ids = np.unique(y, return_inverse=True)
    class_names = tuple(str(c) for c in classes)
    test = None
    if test_path is not None:
        X_test, y_test = _read_npz(test_path)
        if X_test.shape[1] != X.shape[1]:
            raise DataError(
                f"{test_path}: the test file has {X_test.shape[1]} features but the training file has "
                f"{X.shape[1]}; both files must describe records the same way"
            )
        y_test_ids = encode_test_labels(y_test, classes, where=str(test_path), training=f"the training file {path}")
        features = tuple(f"x{i}" for i in range(X.shape[1]))
        test = LabelledData(X_test, y_test_ids, features, class_names, f"{path.stem}/test")
    return LabelledData(
        X, y_ids, tuple(f"x{i}" for i in range(X.shape[1])), class_names, path.stem, test
    )


def encode_test_labels(y_test: np.ndarray, classes: np.ndarray, *, where: str, training: str) -> np.ndarray:
    """Class ids of a separate test split's labels; labels unseen in training are refused."""
    unknown = np.setdiff1d(y_test, classes)
    if unknown.size:
        raise DataError(f"{where}: test labels {unknown.tolist()} do not occur in {training}")
    return np.searchsorted(classes, y_test)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X (rows flattened to 2-D) and y as non-negative integers, checked."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            found = sorted(archive.files)
            missing = [name for name in ("X", "y") if name not in found]
            if missing:
                raise DataError(
                    f"{path}: no array named {missing[0]!r}; the file holds {found}; save X and y"
                )
            X, y = archive["X"], archive["y"]
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read it as an .npz archive of arrays X and y ({exc})"
        ) from None
    if X.ndim < 2 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(
            f"{path}: X must be a numeric array of shape (rows, features), but has {X.dtype} {X.shape}"
        )
    X = X.reshape(len(X), -1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(
            f"{path}: X has {len(X)} rows but y has shape {y.shape}; give one label per row of X"
        )
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise DataError(f"{path}: y must hold integer class labels >= 0, but has dtype {y.dtype}")
    y_float = y.astype(np.float64)
    bad = ~np.isfinite(y_float) | (y_float != np.round(y_float))
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"{path}: y must hold integer class labels >= 0, but {int(bad.sum())} are not integers "
            f"(first: {y[first].item()!r} in row {first})"
        )
    if (y_float < 0).any():
        first = int(np.argmax(y_float < 0))
        raise DataError(
            f"{path}: y must hold integer class labels >= 0, but row {first} has {y[first].item()!r}"
        )
    return X, y.astype(np.int64)


# --- CSV ---------------------------------------------------------------------


def _load_csv(
    path: Path, test_path: Path | None, *, target: str, missing: frozenset[str]
) -> LabelledData:
    header, rows, lines = _read_csv(path)
    if target not in header:
        raise DataError(
            f"{path}: no column named {target!r} (data.target); the columns are {header}"
        )
    t = header.index(target)
    labels, keep = _labels(path, [row[t] for row in rows], lines, target, missing)
    rows = [row for row, k in zip(rows, keep) if k]
    lines = [line for line, k in zip(lines, keep) if k]
    class_names = _sorted_labels(set(labels))
    class_ids = {name: i for i, name in enumerate(class_names)}
    encoders = [
        _fit_column(path, name, [row[j] for row in rows], lines, missing)
        for j, name in enumerate(header)
        if j != t
    ]
    X = _encode(encoders, header, rows, lines, t, path, missing)
    y = np.array([class_ids[label] for label in labels], dtype=np.int64)
    features = tuple(name for enc in encoders for name in enc.feature_names)
    test = None
    if test_path is not None:
        test = _load_csv_test(
            test_path, header, encoders, class_ids, class_names, t, features, missing
        )
    return LabelledData(X, y, features, class_names, path.name.split(".")[0], test)


def _load_csv_test(
    path: Path,
    train_header: list[str],
    encoders: list[_Column],
    class_ids: dict[str, int],
    class_names: tuple[str, ...],
    t: int,
    features: tuple[str, ...],
    missing: frozenset[str],
) -> LabelledData:
    header, rows, lines = _read_csv(path)
    if header != train_header:
        absent = [c for c in train_header if c not in header]
        extra = [c for c in header if c not in train_header]
        raise DataError(
            f"{path}: the test file's columns differ from the training file's "
            f"(missing {absent}, extra {extra}, or another order); "
            "both files need the same header, so that records encode to the same features"
        )
    labels, keep = _labels(path, [row[t] for row in rows], lines, train_header[t], missing)
    rows = [row for row, k in zip(rows, keep) if k]
    lines = [line for line, k in zip(lines, keep) if k]
    unknown = sorted(set(labels) - set(class_ids))
    if unknown:
        raise DataError(f"{path}: test labels {unknown} do not occur in the training file")
    X = _encode(encoders, header, rows, lines, t, path, missing)
    y = np.array([class_ids[label] for label in labels], dtype=np.int64)
    return LabelledData(X, y, features, class_names, path.name)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows of stripped fields and their line numbers; blank lines skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for row in reader:
                fields = [value.strip() for value in row]
                if not any(fields):
                    continue
                if header is None:
                    header = fields
                    continue
                if len(fields) != len(header):
                    raise DataError(
                        f"{path}: line {reader.line_num} has {len(fields)} fields but the header has "
                        f"{len(header)}; fix the line (quote values that contain commas)"
                    )
                rows.append(fields)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it as a UTF-8 CSV file ({exc})") from None
    if header is None or not rows:
        raise DataError(
            f"{path}: no data rows; the file needs a header line and at least one record"
        )
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated or "" in header:
        raise DataError(
            f"{path}: the header needs distinct, non-empty column names, but has {header}"
        )
    return header, rows, lines


def _labels(
    path: Path, raw: list[str], lines: list[int], target: str, missing: frozenset[str]
) -> tuple[list[str], list[bool]]:
    """Unified label spellings, and which rows keep one (rows with a missing label are dropped)."""
    labels, keep = [], []
    for value in raw:
        label = value[:-1].rstrip() if value.endswith(".") else value
        ok = value not in missing and label not in missing
        keep.append(ok)
        if ok:
            labels.append(label)
    dropped = keep.count(False)
    if dropped == len(raw):
        raise DataError(f"{path}: no row has a label in column {target!r}; check data.target")
    if dropped:
        first = lines[keep.index(False)]
        warnings.warn(
            f"{path}: dropped {dropped} row(s) with a missing label in column {target!r} (first at line {first})",
            UserWarning,
            stacklevel=4,
        )
    return labels, keep


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    """Numeric labels in numeric order, others alphabetically."""
    try:
        return tuple(sorted(labels, key=float))
    except ValueError:
        return tuple(sorted(labels))


@dataclass(frozen=True)
class _Column:
    """One feature column's encoding, fitted on the training file."""

    name: str
    categories: tuple[str, ...] = ()  # empty for a numeric column
    median: float = 0.0
    mean: float = 0.0
    std: float = 0.0

    @property
    def feature_names(self) -> tuple[str, ...]:
        if not self.categories:
            return (self.name,)
        return tuple(f"{self.name}={c}" for c in self.categories)

    @property
    def width(self) -> int:
        return len(self.categories) or 1


def _parse_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _fit_column(
    path: Path, name: str, values: list[str], lines: list[int], missing: frozenset[str]
) -> _Column:
    """Numeric if every non-missing value parses as a number, else categorical.

    A column whose values are numbers but for at most 1% (and one) strays is
    refused: that is a typo or an unlisted missing-value marker.
    """
    present = [(v, line) for v, line in zip(values, lines) if v not in missing]
    numbers = [_parse_float(v) for v, _ in present]
    if present and all(x is not None for x in numbers):
        array = np.array(numbers, dtype=np.float64)
        bad = ~np.isfinite(array)
        if bad.any():
            value, line = present[int(np.argmax(bad))]
            raise DataError(
                f"{path}: column {name!r} line {line} holds {value!r}, which is not a finite number; "
                "add the marker to data.missing_values or fix the value"
            )
        return _Column(
            name, median=float(np.median(array)), mean=float(array.mean()), std=float(array.std())
        )
    strays = [(v, line) for (v, line), x in zip(present, numbers) if x is None]
    if len(strays) <= max(1, len(present) // 100) and len(present) >= 20:
        # Nearly every value is a number: a typo, not a categorical column (one-hot
        # encoding it would turn each distinct number into a feature).
        value, line = strays[0]
        raise DataError(
            f"{path}: column {name!r} holds numbers except {len(strays)} value(s), first {value!r} on line "
            f"{line}; fix the value or add it to data.missing_values"
        )
    categories = sorted({v for v, _ in present})
    if len(present) < len(values):
        categories.append(MISSING_CATEGORY)
    return _Column(name, categories=tuple(categories))


def _encode(
    encoders: Sequence[_Column],
    header: list[str],
    rows: list[list[str]],
    lines: list[int],
    target: int,
    path: Path,
    missing: frozenset[str],
) -> np.ndarray:
    """Encode rows column by column with the training file's encoders."""
    blocks = []
    columns = [j for j in range(len(header)) if j != target]
    for enc, j in zip(encoders, columns):
        values = [row[j] for row in rows]
        block = np.zeros((len(rows), enc.width), dtype=np.float64)
        if enc.categories:
            index = {c: k for k, c in enumerate(enc.categories)}
            for i, v in enumerate(values):
                k = index.get(MISSING_CATEGORY if v in missing else v)
                if k is not None:  # unseen category -> all zeros
                    block[i, k] = 1.0
        else:
            for i, v in enumerate(values):
                x = enc.median if v in missing else _parse_float(v)
                if x is None or not np.isfinite(x):
                    raise DataError(
                        f"{path}: column {enc.name!r} is numeric in the training file, but line {lines[i]} "
                        f"holds {v!r}; mark missing values with one of data.missing_values"
                    )
                block[i, 0] = (x - enc.mean) / enc.std if enc.std > 0 else 0.0  # constant -> 0
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((len(rows), 0))


__all__ = [
    "BUILTIN_DATASETS",
    "DATA_SOURCES",
    "MISSING_CATEGORY",
    "LabelledData",
    "load_data",
]
