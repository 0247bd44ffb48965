"""TensorBoard logs of a study: per-trial curves, the HParams dashboard, study figures.

Layout under the run folder's ``tb/``:

* ``tb/`` itself (the run ``.``): the HParams *experiment* summary, written
  once: every hyperparameter with its domain (discrete ``dp`` / ``baseline``,
  intervals for the searched knobs, taken from the config's search space)
  and every metric with its display name, so that the HParams table,
  parallel-coordinates and scatter views are set up before the first trial
  ends;
* ``tb/trial-NNNN``: per-epoch curves while the trial trains
  (``train/loss``, ``validation/utility``, ``privacy/epsilon`` for DP runs),
  then its HParams *session* (start and end) and its final metrics
  (``metrics/*``) as scalars at step 0. A knob that is off is logged as 0;
  ``metrics/epsilon`` is logged for DP trials only (without DP there is no
  finite ε, and 0 would read as perfect privacy);
* ``tb/study``: the study figures of :mod:`tuner.figures` as images, redrawn
  after each finished trial (step = completed trials): ``study/frontier``,
  ``study/roc``, ``study/ppv_vs_prior``, and the current candidate as text
  ``study/candidate``; when the recommendation is confirmed,
  ``recommendation/*`` images and the ``recommendation/summary`` text.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from torch.utils.tensorboard import SummaryWriter

from defenses import DefenseConfig, EpochLog
from tuner.config import Range, RunConfig, SearchSpaceConfig, default_config
from tuner.figures import FIGURES, FigureData, figure_data, recommendation_text, render_all, render_png
from tuner.records import BASELINE_ATTR
from tuner.trial import Evaluation

STUDY_RUN = "study"


@dataclass(frozen=True)
class MetricSpec:
    """One HParams metric: its key in :func:`trial_metrics`, its tag, and how it is shown."""

    key: str
    tag: str
    display_name: str
    description: str


METRICS = (
    MetricSpec("utility_test", "metrics/utility_test", "test utility", "utility on the test role (reported)"),
    MetricSpec(
        "utility_validation", "metrics/utility_validation", "validation utility",
        "utility on the validation role (what the choice uses)",
    ),
    MetricSpec(
        "realistic_ppv", "metrics/realistic_ppv", "realistic PPV",
        "precision of the calibrated attacker's membership claims at the configured prior (max over attacks)",
    ),
    MetricSpec("worst_case_auc", "metrics/worst_case_auc", "worst-case AUC", "oracle ROC AUC, prior 0.5"),
    MetricSpec(
        "worst_case_ppv", "metrics/worst_case_ppv", "worst-case PPV",
        "PPV at prior 0.5 with oracle thresholds",
    ),
    MetricSpec("epsilon", "metrics/epsilon", "ε", "ε spent by the target's training (DP trials only)"),
    MetricSpec("adequate", "metrics/adequate", "adequate", "1 when the trial is adequate in the study's risk view"),
)
METRIC_TAGS = {m.key: m.tag for m in METRICS}
HPARAM_TEXT = {  # name: (display name, description); off knobs are logged as 0
    "dp": ("DP-SGD", "DP-SGD on or off"),
    "baseline": ("baseline", "yes for the undefended baseline trial"),
    "noise_multiplier": ("σ (noise)", "DP-SGD noise multiplier; 0 = DP off"),
    "target_epsilon": ("target ε", "DP-SGD target ε (σ found by Opacus); 0 = DP off"),
    "max_grad_norm": ("C (clipping)", "DP-SGD per-sample clipping bound; 0 = DP off"),
    "weight_decay": ("weight decay", "L2 penalty; 0 = off"),
    "dropout": ("dropout", "dropout probability; 0 = off"),
    "label_smoothing": ("label smoothing", "label smoothing of the loss; 0 = off"),
    "early_stopping_patience": ("early-stop patience", "epochs without improvement; 0 = no early stopping"),
}


def hparam_domains(space: SearchSpaceConfig) -> dict[str, Any]:
    """The HParams domain of every logged hyperparameter, from the search space.

    ``dp`` and ``baseline`` are discrete; a searched or fixed knob is an
    interval from 0 (its off value, which the baseline always takes, even in
    a space that forces a defense on) to its upper bound; a removed knob
    (``null``) is not logged at all.
    """
    domains: dict[str, Any] = {
        "dp": hp.Discrete(["off", "on"] if True in space.dp.use else ["off"]),
        "baseline": hp.Discrete(["no", "yes"]),
    }
    if True in space.dp.use:
        dp_knobs = {"max_grad_norm": space.dp.max_grad_norm}
        if space.dp.target_epsilon is not None:
            dp_knobs["target_epsilon"] = space.dp.target_epsilon
        else:
            dp_knobs["noise_multiplier"] = space.dp.noise_multiplier
        for name, knob in dp_knobs.items():
            if knob is not None:
                domains[name] = hp.RealInterval(0.0, _upper(knob))
    for name in ("weight_decay", "dropout", "label_smoothing"):
        knob = getattr(space, name)
        if knob is not None and _upper(knob) > 0:
            domains[name] = hp.RealInterval(0.0, _upper(knob))
    stop = space.early_stopping
    if True in stop.use and stop.patience is not None:
        domains["early_stopping_patience"] = hp.IntInterval(0, int(_upper(stop.patience)))
    return domains


def _upper(knob: Range | float | int) -> float:
    return float(knob.high if isinstance(knob, Range) else knob)


def defense_hparams(defense: DefenseConfig) -> dict[str, Any]:
    """The defense as a flat dict with the same keys for every trial (off knobs as 0)."""
    dp = defense.dp
    return {
        "dp": "on" if dp is not None else "off",
        "noise_multiplier": float(dp.noise_multiplier or 0.0) if dp else 0.0,
        "max_grad_norm": float(dp.max_grad_norm) if dp else 0.0,
        "target_epsilon": float(dp.target_epsilon or 0.0) if dp else 0.0,
        "weight_decay": float(defense.weight_decay),
        "dropout": float(defense.dropout),
        "label_smoothing": float(defense.label_smoothing),
        "early_stopping_patience": int(defense.early_stopping_patience or 0),
    }


def trial_metrics(evaluation: Evaluation, *, view: str = "realistic") -> dict[str, float]:
    """The final figures of a trial, keyed by their TensorBoard tags (ε only for DP trials)."""
    adequate = evaluation.realistic.adequate if view == "realistic" else evaluation.worst_case.adequate
    values = {
        "utility_test": evaluation.utility_test,
        "utility_validation": evaluation.utility_validation,
        "realistic_ppv": evaluation.realistic.risk,
        "worst_case_auc": evaluation.worst_case.auc,
        "worst_case_ppv": evaluation.worst_case.risk,
        "epsilon": evaluation.epsilon,
        "adequate": float(adequate),
    }
    return {METRIC_TAGS[k]: float(v) for k, v in values.items() if v is not None}


def experiment_summary(config: RunConfig) -> Summary:
    """The HParams experiment: hyperparameter domains and metric infos."""
    domains = hparam_domains(config.search_space)
    hparams = [
        hp.HParam(name, domain, display_name=HPARAM_TEXT[name][0], description=HPARAM_TEXT[name][1])
        for name, domain in domains.items()
    ]
    metrics = [hp.Metric(m.tag, display_name=m.display_name, description=m.description) for m in METRICS]
    return hp.hparams_config_pb(hparams, metrics, time_created_secs=time.time())


def session_summaries(trial_id: str, hparams: dict[str, Any], *, start: float, end: float) -> list[Summary]:
    """The HParams session of one finished trial: start info (its values) and end info (success)."""
    start_pb = hp.hparams_pb(hparams, trial_id=trial_id, start_time_secs=start)
    end_info = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=end)
    end_pb = Summary()
    end_pb.value.add(
        tag=metadata.SESSION_END_INFO_TAG,
        metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_end_info=end_info)),
        tensor=metadata.NULL_TENSOR,
    )
    return [start_pb, end_pb]


def image_summary(tag: str, png: bytes) -> Summary:
    """A TensorBoard image summary holding ``png`` as is (the same bytes as the report's PNG)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
    summary = Summary()
    summary.value.add(
        tag=tag, image=Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
    )
    return summary


class TensorBoardLogger:
    """A trial observer that writes TensorBoard event files under ``logdir``.

    Args:
        logdir: the run folder's ``tb/``.
        config: the run's config (hyperparameter domains, the adequacy bound,
            the prior); the built-in default when ``None``.
        figures: draw the study figures (``tb/study``) as trials finish.
        figure_interval_s: draw the live study figures at most this often,
            the first time once this much time has passed (drawing them costs
            about a second, as much as a short trial); the recommendation's
            figures are always drawn.
    """

    def __init__(
        self,
        logdir: Path,
        config: RunConfig | None = None,
        *,
        figures: bool = True,
        figure_interval_s: float = 30.0,
    ):
        self.logdir = Path(logdir)
        self.config = config or default_config()
        self.figures = figures
        self.figure_interval_s = figure_interval_s
        self._last_drawn = time.monotonic()
        self._writers: dict[int, SummaryWriter] = {}
        self._started: dict[int, float] = {}
        self._study_writer: SummaryWriter | None = None
        self._experiment_written = False
        self._drawn: dict[str, tuple[Any, ...]] = {}
        self._steps_drawn = -1
        self._domains = hparam_domains(self.config.search_space)

    def run_dir(self, number: int) -> Path:
        return self.logdir / f"trial-{number:04d}"

    def trial_started(self, number: int, defense: DefenseConfig) -> None:
        self._write_experiment()
        self._started[number] = time.time()
        self._writer(number)

    def epoch_finished(self, number: int, log: EpochLog) -> None:
        writer = self._writer(number)
        writer.add_scalar("train/loss", log.train_loss, log.epoch)
        if log.validation_utility is not None:
            writer.add_scalar("validation/utility", log.validation_utility, log.epoch)
        if log.epsilon is not None:
            writer.add_scalar("privacy/epsilon", log.epsilon, log.epoch)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, evaluation: Evaluation | None) -> None:
        writer = self._writers.pop(trial.number, None)
        started = self._started.pop(trial.number, time.time())
        if evaluation is None:  # pruned or failed: close its curves, no session
            if writer is not None:
                writer.close()
            return
        self._write_experiment()
        writer = writer or SummaryWriter(str(self.run_dir(trial.number)))
        params = defense_hparams(evaluation.defense)
        params["baseline"] = "yes" if trial.user_attrs.get(BASELINE_ATTR) else "no"
        params = {name: value for name, value in params.items() if name in self._domains}
        file_writer = writer._get_file_writer()
        for summary in session_summaries(self.run_dir(trial.number).name, params, start=started, end=time.time()):
            file_writer.add_summary(summary)
        for tag, value in trial_metrics(evaluation, view=self.config.objective.risk).items():
            writer.add_scalar(tag, value, 0)
        writer.close()

    def study_updated(self, study: optuna.Study) -> None:
        """Redraw the study figures when trials were completed and the interval has passed."""
        if not self.figures or time.monotonic() - self._last_drawn < self.figure_interval_s:
            return
        data = figure_data(study, self.config)
        step = len(data.records)
        if step == self._steps_drawn or step == 0:
            return
        self._steps_drawn = step
        self._last_drawn = time.monotonic()
        self._write_figures(data, prefix="study", step=step)
        self._study().add_text("study/candidate", recommendation_text(data), step)
        self._study().flush()

    def recommendation_made(
        self,
        study: optuna.Study,
        outcome: Any,
        summary: Sequence[str],
        pngs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Log the final figures with the confirmed recommendation, and its summary as text.

        ``pngs`` are those figures already rendered (:func:`tuner.figures.render_all`
        of the same study and outcome), so the report can share them; drawn here when omitted.
        """
        if not self.figures:
            return
        data = figure_data(study, self.config, outcome)
        step = len(data.records)
        self._drawn.clear()
        pngs = pngs if pngs is not None else render_all(data)
        file_writer = self._study()._get_file_writer()
        for name, png in pngs.items():
            file_writer.add_summary(image_summary(f"recommendation/{name}", png), step)
        self._study().add_text("recommendation/summary", recommendation_text(data, summary), step)
        self._study().flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        if self._study_writer is not None:
            self._study_writer.close()
            self._study_writer = None

    def _write_figures(self, data: FigureData, *, prefix: str, step: int) -> None:
        file_writer = self._study()._get_file_writer()
        for name, (_, draw) in FIGURES.items():
            key = _figure_key(name, data)
            if prefix == "study" and self._drawn.get(name) == key:
                continue  # nothing this figure shows has changed
            self._drawn[name] = key
            file_writer.add_summary(image_summary(f"{prefix}/{name}", render_png(draw(data))), step)

    def _write_experiment(self) -> None:
        if self._experiment_written:
            return
        with SummaryWriter(str(self.logdir)) as root:
            root._get_file_writer().add_summary(experiment_summary(self.config))
        self._experiment_written = True

    def _study(self) -> SummaryWriter:
        if self._study_writer is None:
            self._study_writer = SummaryWriter(str(self.logdir / STUDY_RUN))
        return self._study_writer

    def _writer(self, number: int) -> SummaryWriter:
        if number not in self._writers:
            self._writers[number] = SummaryWriter(str(self.run_dir(number)))
        return self._writers[number]


def _figure_key(name: str, data: FigureData) -> tuple[Any, ...]:
    """What a figure depends on: the ROC and PPV figures change only with the baseline and the choice."""
    chosen = data.chosen.number if data.chosen is not None else None
    baseline = data.baseline.number if data.baseline is not None else None
    if name in ("roc", "ppv_vs_prior"):
        return (baseline, chosen, data.confirmed)
    return (len(data.records), chosen, data.worst_case_choice.number if data.worst_case_choice else None)


__all__ = [
    "METRICS",
    "METRIC_TAGS",
    "MetricSpec",
    "STUDY_RUN",
    "TensorBoardLogger",
    "defense_hparams",
    "experiment_summary",
    "hparam_domains",
    "image_summary",
    "session_summaries",
    "trial_metrics",
]
