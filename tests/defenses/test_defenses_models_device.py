"""build_mlp and resolve_device."""

from __future__ import annotations

import pytest
import torch
from opacus.validators import ModuleValidator
from torch import nn

from defenses import SMALL_MODEL_PARAMETERS, build_mlp, cpu_threads, resolve_device


class TestBuildMlp:
    def test_passes_opacus_strict_validation(self) -> None:
        ModuleValidator.validate(
            build_mlp(64, 10, hidden_sizes=(128, 64), dropout=0.3), strict=True
        )

    def test_layers(self) -> None:
        model = build_mlp(5, 3, hidden_sizes=(7, 4), dropout=0.25)
        kinds = [type(layer) for layer in model]
        assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
        assert [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)] == [
            (5, 7),
            (7, 4),
            (4, 3),
        ]
        assert model[2].p == 0.25
        assert model(torch.zeros(2, 5)).shape == (2, 3)

    def test_no_hidden_layer_is_a_linear_model(self) -> None:
        model = build_mlp(5, 3, hidden_sizes=())
        assert len(model) == 1 and isinstance(model[0], nn.Linear)

    def test_state_dict_keys_do_not_depend_on_dropout(self) -> None:
        assert (
            build_mlp(4, 2, dropout=0.0).state_dict().keys()
            == build_mlp(4, 2, dropout=0.5).state_dict().keys()
        )

    def test_dropout_of_one_is_refused(self) -> None:
        with pytest.raises(ValueError) as info:
            build_mlp(4, 2, dropout=1.0)
        assert str(info.value) == "dropout must be a number in [0, 1), but got dropout=1.0"

    def test_bad_width(self) -> None:
        with pytest.raises(ValueError) as info:
            build_mlp(4, 2, hidden_sizes=(8, 0))
        assert (
            str(info.value) == "hidden_sizes[1] must be an integer >= 1, but got hidden_sizes[1]=0"
        )

    def test_one_class_is_refused(self) -> None:
        with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
            build_mlp(4, 1)


class TestCpuThreads:
    def test_auto_is_one_thread_below_a_million_parameters(self) -> None:
        digits_mlp = sum(p.numel() for p in build_mlp(64, 10, hidden_sizes=(128,)).parameters())
        assert digits_mlp == 64 * 128 + 128 + 128 * 10 + 10 == 9610
        assert cpu_threads("auto", n_parameters=digits_mlp) == 1
        assert cpu_threads("auto", n_parameters=SMALL_MODEL_PARAMETERS - 1) == 1

    def test_auto_keeps_torch_default_for_large_models(self) -> None:
        assert cpu_threads("auto", n_parameters=SMALL_MODEL_PARAMETERS) == torch.get_num_threads()

    def test_explicit_count_and_bad_values(self) -> None:
        assert cpu_threads(3, n_parameters=10) == 3
        for bad in (0, -1, "two", True):
            with pytest.raises(ValueError, match="threads must be 'auto' or an integer >= 1"):
                cpu_threads(bad, n_parameters=10)


class TestResolveDevice:
    def test_cpu(self) -> None:
        assert resolve_device("cpu") == torch.device("cpu")
        assert resolve_device(" CPU ") == torch.device("cpu")

    def test_auto(self) -> None:
        expected = "cuda" if torch.cuda.is_available() else "cpu"
        assert resolve_device("auto").type == expected

    def test_unknown_form(self) -> None:
        with pytest.raises(ValueError) as info:
            resolve_device("gpu")
        assert (
            str(info.value)
            == "device must be one of ['auto', 'cpu', 'cuda', 'cuda:N'], but got 'gpu'"
        )

    @pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
    def test_cuda_without_cuda(self) -> None:
        with pytest.raises(ValueError) as info:
            resolve_device("cuda:0")
        assert str(info.value) == (
            "device 'cuda:0' needs CUDA, but CUDA is not available on this machine; "
            "use 'cpu' or 'auto'"
        )

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    def test_cuda_index_out_of_range(self) -> None:
        count = torch.cuda.device_count()
        assert resolve_device("cuda:0") == torch.device("cuda", 0)
        with pytest.raises(ValueError, match="does not exist"):
            resolve_device(f"cuda:{count}")
