"""A trial's evaluation is one user attribute (one storage write) and reads back as flat studies did."""

from __future__ import annotations

import optuna
import pytest

from tuner.figures import ROC_ATTR
from tuner.records import EVALUATION_ATTR, completed_records, has_evaluation, record_from_trial, trial_attrs
from tuner.report import trials_csv


def test_a_finished_trial_stores_its_evaluation_in_one_attribute(small_run) -> None:
    completed = [t for t in small_run.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert completed
    for trial in completed:
        # The baseline flag is set when the trial is enqueued; everything the trial measured is one write.
        assert set(trial.user_attrs) <= {EVALUATION_ATTR, "baseline"}
        evaluation = trial.user_attrs[EVALUATION_ATTR]
        assert {"defense", "realistic", "worst_case", "utility_test", ROC_ATTR, "seconds"} <= set(evaluation)
        assert evaluation["seconds"] > 0


def test_flat_attributes_of_older_studies_read_the_same(small_run) -> None:
    """The same trials with their fields written flat (as before): equal records and trials.csv."""
    study = small_run.study
    flat = optuna.create_study(directions=study.directions)
    for trial in study.trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        attrs = {k: v for k, v in trial.user_attrs.items() if k != EVALUATION_ATTR}
        attrs.update(trial.user_attrs[EVALUATION_ATTR])
        flat.add_trial(
            optuna.trial.create_trial(
                params=trial.params, distributions=trial.distributions, values=trial.values, user_attrs=attrs
            )
        )
    nested = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [trial_attrs(t) for t in flat.trials] == [trial_attrs(t) for t in nested]
    assert all(has_evaluation(t) for t in flat.trials)
    assert [r.defense for r in completed_records(flat)] == [r.defense for r in completed_records(study)]
    assert record_from_trial(flat.trials[0]).realistic == record_from_trial(nested[0]).realistic
    # trials.csv lists trials by number; the flat copy renumbers them from 0, as the study's complete ones are.
    if [t.number for t in nested] == list(range(len(nested))):
        assert trials_csv(flat) == trials_csv(study)


def test_a_trial_without_an_evaluation_has_none() -> None:
    running = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs={"baseline": True})
    assert trial_attrs(running) == {"baseline": True}
    assert not has_evaluation(running)
    with pytest.raises(KeyError):
        record_from_trial(running)
