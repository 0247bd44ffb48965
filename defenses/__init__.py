"""Privacy defenses for a production model, and the loop that applies them.

One module per defense: DP-SGD through Opacus (:mod:`defenses.dp_sgd`, with
the model checks in :mod:`defenses.dp_compatibility` and ε from
:mod:`defenses.epsilon`), weight decay and label smoothing
(:mod:`defenses.regularization`), dropout (in :mod:`defenses.models`) and early
stopping (:mod:`defenses.early_stopping`). :func:`train_model` applies a
:class:`DefenseConfig`; :func:`load_recommendation` reads the tuner's exported
recommendation back, and :func:`prepare_training` applies it to the user's
own model, optimizer and data loader (:mod:`defenses.apply`). Each piece also works
alone in a user's own loop.

This package depends on neither ``tuner`` nor ``objectives``.
"""

from __future__ import annotations

from defenses.apply import PreparedTraining, prepare_training
from defenses.config import (
    ACCOUNTANTS,
    OPTIMIZERS,
    DefenseConfig,
    DPSettings,
    InvalidDefenseError,
    TrainingRecipe,
)
from defenses.device import SMALL_MODEL_PARAMETERS, cpu_threads, resolve_device
from defenses.dp_compatibility import (
    IncompatibleModelError,
    choose_grad_sample_mode,
    validate_model,
)
from defenses.dp_sgd import PrivacyLedger, PrivateTraining, privatize, release_model
from defenses.early_stopping import EarlyStopping
from defenses.ensemble import train_ensemble
from defenses.epsilon import compute_epsilon
from defenses.models import build_mlp
from defenses.prediction import predict_logits
from defenses.recommendation import LoadedRecommendation, load_recommendation
from defenses.regularization import build_criterion, build_optimizer
from defenses.training import EpochLog, TrainedModel, train_model

__all__ = [
    "ACCOUNTANTS",
    "DPSettings",
    "DefenseConfig",
    "EarlyStopping",
    "EpochLog",
    "IncompatibleModelError",
    "InvalidDefenseError",
    "LoadedRecommendation",
    "OPTIMIZERS",
    "PrivacyLedger",
    "PreparedTraining",
    "PrivateTraining",
    "TrainedModel",
    "TrainingRecipe",
    "build_criterion",
    "build_mlp",
    "build_optimizer",
    "choose_grad_sample_mode",
    "compute_epsilon",
    "load_recommendation",
    "predict_logits",
    "prepare_training",
    "privatize",
    "release_model",
    "resolve_device",
    "cpu_threads",
    "SMALL_MODEL_PARAMETERS",
    "train_ensemble",
    "train_model",
    "validate_model",
]
