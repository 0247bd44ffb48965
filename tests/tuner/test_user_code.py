"""The user's own code in the config: `module:function` loaders and model builders."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tuner.config import config_from_dict, load_config
from tuner.data import load_data
from tuner.errors import ConfigError, DataError
from tuner.roles import split_roles
from tuner.user_code import build_target_model, check_target_model, resolve_callable

ROLES_WITH_TEST = {"members": 0.2, "nonmembers": 0.2, "attacker_pool": 0.4, "validation": 0.2, "test": 0.0}


def module(tmp_path: Path, source: str) -> str:
    """Write a uniquely named module into tmp_path; return its name."""
    name = f"user_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return name


DATA = """
import numpy as np
import torch
from torch.utils.data import Dataset

def blobs(n=600, seed=0, shape=(2, 3)):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = (rng.normal(size=(n, *shape)) + y.reshape(-1, *([1] * len(shape)))).astype(np.float32)
    return X, y

def with_test():
    X, y = blobs(600)
    X_test, y_test = blobs(90, seed=1)
    return X, y, X_test, y_test

class Items(Dataset):
    def __init__(self, n, seed):
        self.X, self.y = blobs(n, seed)
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return torch.from_numpy(self.X[i]), torch.tensor(int(self.y[i]))

def datasets():
    return Items(600, 0), Items(90, 1)

def one_dataset():
    return Items(600, 0)

def scalar():
    return 3

def three():
    return 1, 2, 3

def ragged_labels():
    X, y = blobs(600)
    return X, y[:-1]

def float_labels():
    X, y = blobs(600)
    return X, y + 0.5

def raises():
    raise RuntimeError("database is down")

NOT_CALLABLE = 5
"""


def python_config(tmp_path: Path, loader: str, **data) -> dict:
    return {"data": {"source": "python", "loader": loader, "python_path": [str(tmp_path)], **data}}


class TestResolve:
    def test_imports_a_function_from_python_path(self, tmp_path):
        name = module(tmp_path, DATA)
        fn = resolve_callable(f"{name}:blobs", key="data.loader", python_path=[tmp_path])
        assert fn(n=6)[0].shape == (6, 2, 3)

    @pytest.mark.parametrize(
        "reference, message",
        [
            ("no_colon", "data.loader: must be 'module:function' (e.g. 'mypkg.models:build_cnn'), but got 'no_colon'"),
            ("missing_mod_xyz:f", "data.loader: cannot import module 'missing_mod_xyz' of 'missing_mod_xyz:f': no such module"),
            ("{mod}:nope", "has no attribute 'nope' of '{mod}:nope'; its public callables are"),
            ("{mod}:NOT_CALLABLE", "data.loader: '{mod}:NOT_CALLABLE' must name a callable, but it is a int"),
        ],
    )
    def test_errors_name_the_key_and_the_value(self, tmp_path, reference, message):
        name = module(tmp_path, DATA)
        with pytest.raises(ConfigError) as info:
            resolve_callable(reference.format(mod=name), key="data.loader", python_path=[tmp_path])
        assert message.format(mod=name) in str(info.value)

    def test_a_module_that_fails_to_import(self, tmp_path):
        name = module(tmp_path, "import missing_dependency_qq\n")
        with pytest.raises(ConfigError, match=rf"data.loader: importing '{name}' of '{name}:f' failed: "
                                              r"ModuleNotFoundError: No module named 'missing_dependency_qq'"):
            resolve_callable(f"{name}:f", key="data.loader", python_path=[tmp_path])

    def test_a_missing_folder(self, tmp_path):
        with pytest.raises(ConfigError, match="fix model.python_path"):
            resolve_callable("m:f", key="model.builder", python_path=[tmp_path / "absent"])


class TestLoader:
    def test_arrays_keep_the_record_shape(self, tmp_path):
        name = module(tmp_path, DATA)
        cfg = config_from_dict(python_config(tmp_path, f"{name}:blobs", options={"n": 300}))
        data = load_data(cfg.data)
        assert (data.n_rows, data.n_features, data.input_shape) == (300, 6, (2, 3))
        assert data.class_names == ("0", "1", "2") and data.test is None
        assert data.name == f"{name}:blobs"

    @pytest.mark.parametrize("function", ["with_test", "datasets"])
    def test_a_test_split_becomes_the_test_role(self, tmp_path, function):
        name = module(tmp_path, DATA)
        cfg = config_from_dict(python_config(tmp_path, f"{name}:{function}", roles=ROLES_WITH_TEST))
        data = load_data(cfg.data)
        assert (data.n_rows, data.test.n_rows, data.input_shape) == (600, 90, (2, 3))
        roles = split_roles(data, cfg.data.roles, cfg.data.pool, seed=0)
        assert roles.sizes()["test"] == 90 and roles.input_shape == (2, 3)
        expected_X, expected_y = (np.asarray(a) for a in __import__(name).blobs(90, seed=1))
        assert np.array_equal(data.test.X, expected_X.reshape(90, 6)) and np.array_equal(data.test.y, expected_y)

    def test_a_dataset_of_items(self, tmp_path):
        name = module(tmp_path, DATA)
        data = load_data(config_from_dict(python_config(tmp_path, f"{name}:one_dataset")).data)
        X, y = __import__(name).blobs(600)
        assert np.array_equal(data.X, X.reshape(600, 6)) and np.array_equal(data.y, y)

    @pytest.mark.parametrize(
        "function, message",
        [
            ("scalar", "must return (X, y), (X, y, X_test, y_test), a torch Dataset of (x, label) items, or a pair "
                       "(train_dataset, test_dataset), but returned a int"),
            ("three", "but returned a tuple of 3 items"),
            ("ragged_labels", "X has 600 rows but y has shape (599,); give one label per row"),
            ("float_labels", "y must hold integer class labels >= 0, but has dtype float64"),
            ("raises", "raised RuntimeError: database is down"),
        ],
    )
    def test_wrong_returns_are_data_errors(self, tmp_path, function, message):
        name = module(tmp_path, DATA)
        with pytest.raises(DataError) as info:
            load_data(config_from_dict(python_config(tmp_path, f"{name}:{function}")).data)
        assert message in str(info.value)
        assert f"data.loader '{name}:{function}'" in str(info.value)

    def test_no_test_split_with_test_fraction_0(self, tmp_path):
        name = module(tmp_path, DATA)
        cfg = config_from_dict(python_config(tmp_path, f"{name}:blobs", roles=ROLES_WITH_TEST))
        with pytest.raises(DataError, match=r"data.roles.test is 0 but data.loader .* returned no test split"):
            load_data(cfg.data)


class TestConfigKeys:
    def test_messages(self):
        with pytest.raises(ConfigError) as info:
            config_from_dict({
                "data": {"source": "python", "path": "x.csv", "options": {"1bad": 2}},
                "model": {"builder": "pkg.mod:build", "options": {"dropout": 0.5}},
            })
        assert str(info.value).splitlines()[1:] == [
            "  data.options: must be a mapping of keyword arguments (identifier keys) or null, but got {'1bad': 2}",
            "  data.loader: must be 'module:function' of your loader when data.source is 'python', but got None",
            "  data.path: must be null when data.source is 'python' (the loader returns the data; pass its "
            f"arguments in data.options), but got '{Path('x.csv')}'",
            "  model.options: must be keyword arguments other than ['input_shape', 'n_classes', 'dropout'], which "
            "privtune passes itself, but got {'dropout': 0.5}",
        ]

    def test_keys_of_the_user_code_need_its_source(self):
        with pytest.raises(ConfigError) as info:
            config_from_dict({"data": {"loader": "m:f"}, "model": {"options": {"width": 2}}})
        assert "data.loader: must be None unless data.source is 'python', but got 'm:f'" in str(info.value)
        assert "model.options: must be empty unless model.builder is set, but got {'width': 2}" in str(info.value)

    def test_python_path_defaults_to_the_config_folder(self, tmp_path):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump({"data": {"source": "python", "loader": "m:f", "roles": ROLES_WITH_TEST},
                                        "model": {"builder": "m:g", "python_path": "code"}}))
        cfg = load_config(path)
        assert cfg.data.python_path == (tmp_path.resolve(),)
        assert cfg.model.python_path == ((tmp_path / "code").resolve(),)


MODELS = """
import torch
from torch import nn

def cnn(*, input_shape, n_classes, dropout, width=4):
    channels = input_shape[0]
    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * input_shape[1], width),
                         nn.ReLU(), nn.Linear(width, n_classes))

def no_dropout(*, input_shape, n_classes, dropout):
    return nn.Sequential(nn.Flatten(), nn.Linear(6, n_classes))

def batchnorm(*, input_shape, n_classes, dropout):
    return nn.Sequential(nn.Flatten(), nn.BatchNorm1d(6), nn.Dropout(dropout), nn.Linear(6, n_classes))

def wrong_output(*, input_shape, n_classes, dropout):
    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(6, n_classes + 1))

def not_a_module(*, input_shape, n_classes, dropout):
    return "model"

def positional(input_shape, n_classes):
    return nn.Linear(6, n_classes)
"""


def model_setup(tmp_path: Path, builder: str, **space):
    data = module(tmp_path, DATA)
    models = module(tmp_path, MODELS)
    raw = python_config(tmp_path, f"{data}:blobs")
    raw["model"] = {"builder": f"{models}:{builder}", "python_path": [str(tmp_path)]}
    raw["search_space"] = space
    cfg = config_from_dict(raw)
    roles = split_roles(load_data(cfg.data), cfg.data.roles, cfg.data.pool, seed=0)
    return cfg, roles


class TestModelBuilder:
    def test_records_are_unflattened_in_front_of_the_users_model(self, tmp_path):
        cfg, roles = model_setup(tmp_path, "cnn")
        check_target_model(cfg, roles)
        model = build_target_model(cfg, roles, dropout=0.25)
        assert isinstance(model[0], nn.Unflatten) and model[0].unflattened_size == (2, 3)
        assert model[1][1].p == 0.25
        assert model(torch.zeros(5, 6)).shape == (5, 3)

    @pytest.mark.parametrize(
        "builder, space, message",
        [
            ("no_dropout", {}, "search_space.dropout is searched, but the model built with dropout=0.6 has no "
                               "dropout layer with p=0.6 (dropout rates found: [])"),
            ("batchnorm", {}, "cannot be trained with DP-SGD (Opacus)"),
            ("wrong_output", {}, "must return logits of shape (batch, n_classes) = (2, 3), but returned (2, 4)"),
            ("not_a_module", {}, "must return a torch.nn.Module, but returned a str"),
            ("positional", {}, "must accept the keyword arguments ['input_shape', 'n_classes', 'dropout'], but "
                               "does not accept ['dropout']"),
        ],
    )
    def test_contract_violations_are_config_errors(self, tmp_path, builder, space, message):
        cfg, roles = model_setup(tmp_path, builder, **space)
        with pytest.raises(ConfigError) as info:
            check_target_model(cfg, roles)
        assert message in str(info.value) and "model.builder" in str(info.value)

    def test_batchnorm_is_fine_without_dp(self, tmp_path):
        cfg, roles = model_setup(tmp_path, "batchnorm", dp={"use": [False]})
        check_target_model(cfg, roles)


def test_dry_run_prints_the_resolved_config_and_role_sizes_and_writes_nothing(tmp_path):
    data, models = module(tmp_path, DATA), module(tmp_path, MODELS)
    config = {"data": {"source": "python", "loader": f"{data}:with_test", "roles": ROLES_WITH_TEST},
              "model": {"builder": f"{models}:cnn", "options": {"width": 5}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "tuner.cli", "tune", "c.yaml", "--dry-run", "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # 600 records: members 120, nonmembers 120, pool 240 (reference 120, population 60, calibration 60),
    # validation 120; the loader's 90 test records are the test role.
    assert ("data roles: members=120, nonmembers=120, attacker_reference=120, attacker_population=60, "
            "attacker_calibration=60, validation=120, test=90") in lines
    assert f"data: {data}:with_test: 690 records, 6 features (records of shape (2, 3)), 3 classes" in lines
    # 6·5 + 5 weights and biases of the first layer, 5·3 + 3 of the head
    assert f"model: {models}:cnn with options {{'width': 5}}, 53 parameters" in lines
    resolved = yaml.safe_load(result.stdout.split("\n\ndata:")[0])
    assert resolved["data"]["python_path"] == [str(tmp_path.resolve())]
    assert resolved["model"]["options"] == {"width": 5}
    assert resolved["data"]["roles"] == ROLES_WITH_TEST
    assert not out.exists()


def test_a_bad_reference_exits_2_before_anything_is_written(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"model": {"builder": "absent_module_q:build"}}))
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "tuner.cli", "tune", "c.yaml", "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "model.builder: cannot import module 'absent_module_q'" in result.stderr
    assert not out.exists()
