"""Data loading: built-ins, a quirky CSV encoded by hand, real UCI Adult, NPZ, and every data error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuner.config import DataConfig
from tuner.data import LabelledData, load_data
from tuner.errors import DataError

REPO = Path(__file__).resolve().parents[2]
ADULT = REPO.parent / "shared" / "data" / "adult"
R = np.sqrt(1.5)  # |z| of the quirky CSV's off-centre values (see below)


def _csv(tmp_path: Path, text: str, name: str = "train.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _npz(tmp_path: Path, name: str = "d.npz", **arrays: np.ndarray) -> DataConfig:
    np.savez(tmp_path / name, **arrays)
    return DataConfig(source="npz", path=tmp_path / name)


class TestBuiltin:
    def test_digits(self) -> None:
        data = load_data(DataConfig(name="digits"))
        assert (data.n_rows, data.n_features, data.n_classes) == (1797, 64, 10)
        assert data.X.dtype == np.float32 and data.y.dtype == np.int64
        assert data.X.min() == 0.0 and data.X.max() == 1.0
        assert data.class_names == tuple("0123456789")
        assert data.test is None

    def test_breast_cancer(self) -> None:
        data = load_data(DataConfig(name="breast_cancer"))
        assert (data.n_rows, data.n_features, data.n_classes) == (569, 30, 2)
        assert data.class_names == ("malignant", "benign")
        np.testing.assert_allclose(data.X.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(data.X.std(axis=0), 1, atol=1e-5)

    def test_fingerprint_identifies_the_data(self) -> None:
        digits = load_data(DataConfig(name="digits"))
        assert digits.fingerprint() == load_data(DataConfig(name="digits")).fingerprint()
        assert len(digits.fingerprint()) == 64
        assert digits.fingerprint() != load_data(DataConfig(name="breast_cancer")).fingerprint()


# Spaces around fields and names, '?' for missing values, a label with a trailing dot,
# a constant column and a row whose label is missing (dropped with a warning).
QUIRKY = """\
 age , color ,income, score ,k
30, red, >50K, 1, 2
?, blue , <=50K., 3, 2
50, ?, >50K., ?, 2

40,red, <=50K , 5, 2
40, blue, ?, 7, 2
"""
QUIRKY_TEST = """\
age,color,income,score,k
 60, green, >50K., 2, 2
 ?, ?, <=50K., 9, 2
"""


class TestQuirkyCsv:
    def _load(self, tmp_path: Path, test: bool = False) -> LabelledData:
        spec = DataConfig(
            source="csv",
            path=_csv(tmp_path, QUIRKY),
            target="income",
            test_path=_csv(tmp_path, QUIRKY_TEST, "test.csv") if test else None,
        )
        with pytest.warns(
            UserWarning,
            match=r"dropped 1 row\(s\) with a missing label in column 'income' "
            r"\(first at line 7\)",
        ):
            return load_data(spec)

    def test_encoded_by_hand(self, tmp_path: Path) -> None:
        data = self._load(tmp_path)
        # Kept rows 1-4. age observed 30, 50, 40: mean 40, std sqrt(200/3), median 40 (imputes row 2);
        # (30 - 40) / sqrt(200/3) = -sqrt(3/2). score observed 1, 3, 5: mean 3, std sqrt(8/3), median 3;
        # (1 - 3) / sqrt(8/3) = -sqrt(3/2). color categories from the file: blue, red, then missing.
        # k is constant: kept as 0.
        assert data.feature_names == (
            "age",
            "color=blue",
            "color=red",
            "color=<missing>",
            "score",
            "k",
        )
        expected = np.array(
            [
                [-R, 0, 1, 0, -R, 0],
                [0, 1, 0, 0, 0, 0],
                [R, 0, 0, 1, 0, 0],
                [0, 0, 1, 0, R, 0],
            ],
            dtype=np.float32,
        )
        np.testing.assert_allclose(data.X, expected, rtol=1e-6, atol=1e-7)
        assert data.class_names == ("<=50K", ">50K")
        assert data.y.tolist() == [1, 0, 1, 0]
        assert data.name == "train"

    def test_separate_test_file_is_encoded_with_the_training_statistics(
        self, tmp_path: Path
    ) -> None:
        test = self._load(tmp_path, test=True).test
        assert test is not None
        # age 60: 20 / sqrt(200/3) = 2·sqrt(3/2); green is unseen: all zeros; score 2: -1 / sqrt(8/3);
        # row 2: age imputed (0), color missing, score 9: 6 / sqrt(8/3) = 3·sqrt(3/2).
        expected = np.array(
            [[2 * R, 0, 0, 0, -np.sqrt(3 / 8), 0], [0, 0, 0, 1, 3 * R, 0]],
            dtype=np.float32,
        )
        np.testing.assert_allclose(test.X, expected, rtol=1e-6, atol=1e-7)
        assert test.y.tolist() == [1, 0]


@pytest.fixture(scope="module")
def adult() -> LabelledData:
    if not ADULT.is_dir():
        pytest.skip(
            f"UCI Adult not found at {ADULT} (the shared data folder next to the repository)"
        )
    return load_data(
        DataConfig(
            source="csv", path=ADULT / "adult.csv", test_path=ADULT / "adult.test", target="income"
        )
    )


class TestAdult:
    def test_rows_and_classes(self, adult: LabelledData) -> None:
        assert adult.test is not None
        assert (adult.n_rows, adult.test.n_rows, adult.n_classes) == (32561, 16281, 2)
        # 6 numeric columns + 102 distinct categorical values ('?' included):
        # awk -F, 'NR>1{for(i=1;i<=14;i++) if(i==2||i==4||i==6||i==7||i==8||i==9||i==10||i==14)
        #   s[i SUBSEP $i]=1} END{print length(s)}' adult.csv   ->  102
        assert adult.n_features == adult.test.n_features == 108

    def test_label_spellings_are_unified(self, adult: LabelledData) -> None:
        assert adult.test is not None
        assert adult.class_names == adult.test.class_names == ("<=50K", ">50K")
        # awk -F, 'NR>1 && $15 ~ />50K/' adult.csv | wc -l   ->  7841
        # awk -F, 'NR>1 && $15 ~ />50K/' adult.test | wc -l  ->  3846  (written ' >50K.')
        assert int(adult.y.sum()) == 7841
        assert int(adult.test.y.sum()) == 3846

    def test_encoding(self, adult: LabelledData) -> None:
        assert adult.test is not None
        assert np.isfinite(adult.X).all() and np.isfinite(adult.test.X).all()
        age = adult.feature_names.index("age")
        assert abs(float(adult.X[:, age].mean())) < 1e-5
        assert "workclass=<missing>" in adult.feature_names  # '?' is its own category


class TestNpz:
    def test_labels_are_remapped(self, tmp_path: Path) -> None:
        X = np.arange(12, dtype=np.float64).reshape(4, 3)
        data = load_data(_npz(tmp_path, X=X, y=np.array([5, 2, 5, 2])))
        assert data.y.tolist() == [1, 0, 1, 0]
        assert data.class_names == ("2", "5")
        assert data.name == "d"

    def test_integral_float_labels_and_images_are_accepted(self, tmp_path: Path) -> None:
        data = load_data(_npz(tmp_path, X=np.zeros((4, 2, 2)), y=np.array([0.0, 1.0, 0.0, 1.0])))
        assert (data.n_features, data.y.tolist()) == (4, [0, 1, 0, 1])

    def test_separate_test_file(self, tmp_path: Path) -> None:
        spec = _npz(tmp_path, X=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
        np.savez(tmp_path / "t.npz", X=np.ones((2, 3)), y=np.array([1, 1]))
        data = load_data(DataConfig(source="npz", path=spec.path, test_path=tmp_path / "t.npz"))
        assert data.test is not None and data.test.y.tolist() == [1, 1]


class TestDataErrors:
    def _error(self, spec: DataConfig) -> str:
        with pytest.raises(DataError) as info:
            load_data(spec)
        return str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        message = self._error(DataConfig(source="csv", path=tmp_path / "no.csv", target="y"))
        assert message == (
            f"data.path: file not found: {tmp_path / 'no.csv'}; "
            "relative paths resolve against the config file's folder"
        )

    def test_missing_target_column_lists_the_columns(self, tmp_path: Path) -> None:
        spec = DataConfig(source="csv", path=_csv(tmp_path, "a,b\n1,x\n2,y\n"), target="label")
        assert (
            self._error(spec)
            == f"{tmp_path / 'train.csv'}: no column named 'label' (data.target); the columns are ['a', 'b']"
        )

    def test_single_class(self, tmp_path: Path) -> None:
        spec = DataConfig(source="csv", path=_csv(tmp_path, "a,y\n1,yes\n2,yes.\n"), target="y")
        assert self._error(spec) == (
            "train: the labels hold a single class ('yes'); training and membership inference need at "
            "least 2 classes: check the label column (data.target) or the file"
        )

    def test_no_labelled_row(self, tmp_path: Path) -> None:
        spec = DataConfig(source="csv", path=_csv(tmp_path, "a,y\n1,?\n2, \n"), target="y")
        assert self._error(spec) == (
            f"{tmp_path / 'train.csv'}: no row has a label in column 'y'; check data.target"
        )

    def test_wrong_number_of_fields(self, tmp_path: Path) -> None:
        spec = DataConfig(source="csv", path=_csv(tmp_path, "a,y\n1,0\n2,1,3\n"), target="y")
        assert self._error(spec) == (
            f"{tmp_path / 'train.csv'}: line 3 has 3 fields but the header has 2; "
            "fix the line (quote values that contain commas)"
        )

    def test_text_in_a_numeric_test_column(self, tmp_path: Path) -> None:
        spec = DataConfig(
            source="csv",
            path=_csv(tmp_path, "a,y\n1,0\n2,1\n"),
            test_path=_csv(tmp_path, "a,y\nten,0\n", "test.csv"),
            target="y",
        )
        assert self._error(spec) == (
            f"{tmp_path / 'test.csv'}: column 'a' is numeric in the training file, but line 2 holds 'ten'; "
            "mark missing values with one of data.missing_values"
        )

    def test_nan_in_X(self, tmp_path: Path) -> None:
        X = np.zeros((5, 2))
        X[3, 1] = np.nan
        X[4, 0] = np.inf
        assert self._error(_npz(tmp_path, X=X, y=np.array([0, 1, 0, 1, 0]))) == (
            "d: X holds 2 NaN or infinite values (first in row 3); impute or drop those values before loading"
        )

    def test_shape_mismatch(self, tmp_path: Path) -> None:
        message = self._error(_npz(tmp_path, X=np.zeros((5, 2)), y=np.array([0, 1, 0])))
        assert (
            message
            == f"{tmp_path / 'd.npz'}: X has 5 rows but y has shape (3,); give one label per row of X"
        )

    def test_float_labels(self, tmp_path: Path) -> None:
        message = self._error(_npz(tmp_path, X=np.zeros((3, 2)), y=np.array([0.0, 1.5, 1.0])))
        assert message == (
            f"{tmp_path / 'd.npz'}: y must hold integer class labels >= 0, but 1 are not integers "
            "(first: 1.5 in row 1)"
        )

    def test_negative_labels(self, tmp_path: Path) -> None:
        message = self._error(_npz(tmp_path, X=np.zeros((3, 2)), y=np.array([0, -1, 1])))
        assert (
            message
            == f"{tmp_path / 'd.npz'}: y must hold integer class labels >= 0, but row 1 has -1"
        )

    def test_missing_array(self, tmp_path: Path) -> None:
        message = self._error(_npz(tmp_path, X=np.zeros((3, 2)), labels=np.array([0, 1, 1])))
        assert (
            message
            == f"{tmp_path / 'd.npz'}: no array named 'y'; the file holds ['X', 'labels']; save X and y"
        )

    def test_test_file_with_other_features(self, tmp_path: Path) -> None:
        spec = _npz(tmp_path, X=np.zeros((4, 3)), y=np.array([0, 1, 0, 1]))
        np.savez(tmp_path / "t.npz", X=np.ones((2, 4)), y=np.array([1, 0]))
        message = self._error(
            DataConfig(source="npz", path=spec.path, test_path=tmp_path / "t.npz")
        )
        assert message == (
            f"{tmp_path / 't.npz'}: the test file has 4 features but the training file has 3; "
            "both files must describe records the same way"
        )

    def test_direct_construction_is_checked_too(self) -> None:
        with pytest.raises(DataError, match=r"X has 3 rows but y has shape \(2,\)"):
            LabelledData(np.zeros((3, 1)), np.array([0, 1]), ("a",), ("n", "p"), "direct")


def test_a_typo_in_a_numeric_csv_column_is_refused_not_one_hot_encoded(tmp_path):
    rows = ["age,label"] + [f"{20 + i % 50},{'yes' if i % 2 else 'no'}" for i in range(200)]
    rows[18] = "hello,yes"  # rows[0] is the header on line 1, so rows[18] is line 19
    path = tmp_path / "typo.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'age' holds numbers except 1 value\(s\), first 'hello' on line 19"):
        load_data(DataConfig(source="csv", path=str(path), target="label"))
