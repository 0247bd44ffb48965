"""Reference models beside the target (a helper process) or after it: the same trial, bit for bit."""

from __future__ import annotations

import os
import signal
import numpy as np
import pytest
import torch

from defenses import DefenseConfig, DPSettings
from tuner.config import config_from_dict
from tuner.errors import ConfigError
from tuner.references import ReferenceTraining, resolve_processes, train_references
from tuner.trial import evaluate_defense, trial_seed
from tuner.tune import prepare

CPU = torch.device("cpu")


def small_prepared(**training):
    return prepare(
        config_from_dict(
            {
                "study": {"name": "refs", "seed": 0},
                "training": {"epochs": 6, "processes": 2, **training},
                "threat_model": {"calibration_fprs": [0.1]},
            }
        )
    )


def assert_same_evaluation(a, b) -> None:
    assert a.utility_validation == b.utility_validation and a.utility_test == b.utility_test
    for name in a.scores:
        for part in ("members", "nonmembers", "calibration"):
            np.testing.assert_array_equal(getattr(a.scores[name], part), getattr(b.scores[name], part))
    assert a.realistic.to_dict() == b.realistic.to_dict()
    assert a.worst_case.to_dict() == b.worst_case.to_dict()
    assert a.epsilon == b.epsilon


@pytest.fixture(scope="module")
def contexts():
    """One study's context with its reference training twice: the helper forked, and all in-process."""
    prepared = small_prepared()
    context, beside = prepared.context, prepared.references
    here = ReferenceTraining(context, 1)
    beside.start()
    assert beside.beside and not here.beside
    yield context, beside, here
    beside.close()


@pytest.mark.parametrize(
    "defense",
    [
        DefenseConfig(dropout=0.3, weight_decay=1e-3, label_smoothing=0.1),
        DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0), early_stopping_patience=2),
    ],
    ids=["dropout", "dp-early-stop"],
)
def test_a_trial_is_the_same_with_references_beside_the_target(contexts, defense):
    context, beside, here = contexts
    seed = trial_seed(0, 7)
    assert_same_evaluation(
        evaluate_defense(context, defense, seed=seed, references=beside),
        evaluate_defense(context, defense, seed=seed, references=here),
    )
    # Without references, everything trains here: the same trial again.
    assert_same_evaluation(evaluate_defense(context, defense, seed=seed), evaluate_defense(context, defense, seed=seed, references=here))


def test_reference_models_from_the_helper_equal_those_trained_here(contexts):
    context, beside, _ = contexts
    defense = DefenseConfig(dropout=0.2)
    from_helper = beside.begin(defense, seed=11).result()
    trained_here = train_references(context, defense, seed=11)
    assert len(from_helper) == len(trained_here) == context.n_reference_models == 2
    for a, b in zip(from_helper, trained_here):
        for (name, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
            assert torch.equal(p, q), name
        assert a.history == b.history


def test_a_pruned_trial_abandons_its_reference_models_and_the_next_trial_is_unchanged(contexts):
    """The target stops after epoch 1 (as a pruned trial does); the helper drops that trial's references."""
    import optuna

    context, beside, here = contexts
    defense = DefenseConfig(dropout=0.1)

    def prune(log) -> None:
        raise optuna.TrialPruned("pruned at epoch 1")

    with pytest.raises(optuna.TrialPruned):
        evaluate_defense(context, defense, seed=trial_seed(0, 3), on_epoch_end=prune, references=beside)
    assert beside._helper._abandoned.value >= 1  # the request was marked abandoned
    seed = trial_seed(0, 4)
    assert_same_evaluation(
        evaluate_defense(context, defense, seed=seed, references=beside),
        evaluate_defense(context, defense, seed=seed, references=here),
    )


def test_references_of_another_context_are_refused(contexts):
    context, beside, _ = contexts
    other = small_prepared().context
    with pytest.raises(ValueError, match="a ReferenceTraining of another context"):
        evaluate_defense(other, DefenseConfig(), seed=1, references=beside)


def test_a_lost_helper_falls_back_to_training_here(capsys):
    prepared = small_prepared()
    context, references = prepared.context, prepared.references
    references.start()
    expected = evaluate_defense(context, DefenseConfig(), seed=5)
    os.kill(references._helper._process.pid, signal.SIGKILL)
    references._helper._process.join(timeout=5)
    assert_same_evaluation(evaluate_defense(context, DefenseConfig(), seed=5, references=references), expected)
    assert "training the reference models in this process from now on" in capsys.readouterr().err
    assert not references.beside
    references.start()  # not forked again
    assert not references.beside


class TestResolveProcesses:
    def test_auto_uses_a_second_core_for_one_thread_training_on_the_cpu(self) -> None:
        cores = len(os.sched_getaffinity(0))
        assert resolve_processes("auto", device=CPU, threads=1) == (2 if cores >= 2 else 1)
        assert resolve_processes("auto", device=CPU, threads=2) == 1  # the cores are in use already
        assert resolve_processes(1, device=CPU, threads=1) == 1
        assert resolve_processes(2, device=CPU, threads=4) == 2

    def test_cuda_trains_in_one_process(self) -> None:
        assert resolve_processes("auto", device=torch.device("cuda"), threads=None) == 1
        with pytest.raises(ConfigError) as info:
            resolve_processes(2, device=torch.device("cuda:0"), threads=None)
        assert str(info.value) == (
            "training.processes: 2 trains reference models in a forked CPU process, which the device cuda:0 "
            "cannot use (a CUDA context cannot be forked); use 1 or auto"
        )

    @pytest.mark.parametrize("setting", [0, 3, "two", True, 2.0])
    def test_other_settings_are_refused(self, setting) -> None:
        with pytest.raises(ConfigError, match=r"training.processes: must be one of \['auto', 1, 2\]"):
            resolve_processes(setting, device=CPU, threads=1)

    def test_an_attack_without_reference_models_forks_nothing(self) -> None:
        prepared = prepare(
            config_from_dict(
                {"training": {"epochs": 2, "processes": 2},
                 "threat_model": {"attacks": ["loss"], "calibration_fprs": [0.1]}}
            )
        )
        prepared.references.start()
        assert prepared.context.n_reference_models == 0 and not prepared.references.beside
