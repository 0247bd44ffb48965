"""Several `privtune tune` workers on one study: real processes, real PostgreSQL and SQLite.

The PostgreSQL tests need a server: `.ci/run` starts one (``.ci/postgres.sh``)
and sets ``PRIVTUNE_TEST_POSTGRES_URL``. Outside CI they skip without it; in
CI (``CI`` set) they fail, so a missing server cannot pass for green.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml

from tuner.liveness import WORKER_ATTR
from tuner.storage import driver_url

pytestmark = pytest.mark.slow

WORKERS = {
    "study": {"name": "shared", "trials": 8, "seed": 2},
    "training": {"epochs": 5},
    "confirmation": {"seeds": 2},
    "threat_model": {"calibration_fprs": [0.01, 0.1]},
}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database on the test server, dropped afterwards."""
    server = os.environ.get("PRIVTUNE_TEST_POSTGRES_URL")
    if not server:
        message = "PRIVTUNE_TEST_POSTGRES_URL is not set: run the tests through `bash .ci/postgres.sh make test`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    import psycopg

    name = f"privtune_{uuid.uuid4().hex[:12]}"
    admin = driver_url(server).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_worker(config: Path, out: Path, storage: str, trials: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "tune", str(config), "--storage", storage, "--trials", str(trials),
         "--out", str(out)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_two_workers(tmp_path: Path, storage: str, trials: int) -> tuple[optuna.Study, list]:
    config = tmp_path / "workers.yaml"
    config.write_text(yaml.safe_dump(WORKERS, sort_keys=False))
    workers = [start_worker(config, tmp_path / f"worker-{i}", storage, trials) for i in range(2)]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=900)
        results.append((worker.returncode, stdout, stderr))
    for code, stdout, stderr in results:
        assert code in (0, 3), stdout + stderr
        assert "Traceback" not in stderr
    # Progress counts the study's trials, both workers': whoever finishes the last one prints N/N.
    done = [int(line[1:].split("/")[0]) for _, _, err in results for line in err.splitlines()
            if line.startswith("[") and " trial #" in line and not line.endswith("...")]
    assert max(done) == trials and len(done) == trials
    study = optuna.load_study(study_name="shared", storage=driver_url(storage))
    return study, results


def check_shared_study(study: optuna.Study, trials: int, tmp_path: Path) -> None:
    numbers = [t.number for t in study.trials]
    assert len(numbers) == trials  # no trial lost, none run twice
    assert sorted(numbers) == list(range(trials)) and len(set(numbers)) == trials
    assert all(t.state in FINISHED for t in study.trials)
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1
    pids = Counter(t.system_attrs[WORKER_ATTR]["pid"] for t in study.trials)
    assert len(pids) == 2, f"both workers should have run trials: {dict(pids)}"
    # Both workers end with the whole study's recommendation, confirmed once and shared.
    a, b = (tmp_path / f"worker-{i}" / "recommendation.yaml" for i in range(2))
    assert a.exists() == b.exists()
    if a.exists():
        assert yaml.safe_load(a.read_text()) == yaml.safe_load(b.read_text())


def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    study, _ = run_two_workers(tmp_path, postgres_url, trials=8)
    check_shared_study(study, 8, tmp_path)


def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study, _ = run_two_workers(tmp_path, storage, trials=6)
    check_shared_study(study, 6, tmp_path)


def test_claims_count_finished_and_running_trials_and_rerun_a_failed_baseline(tmp_path):
    from tuner.config import config_from_dict
    from tuner.search_space import SearchSpace
    from tuner.study import open_study

    config = config_from_dict({"study": {"name": "claims"}})
    shared = open_study(config, f"sqlite:///{tmp_path / 'claims.db'}", data_fingerprint="data")
    space = SearchSpace(config.search_space)
    first = shared.claim(space, target=3)
    assert first.user_attrs.get("baseline") is True
    shared.study.tell(first, state=optuna.trial.TrialState.FAIL)  # e.g. interrupted
    again = shared.claim(space, target=3)
    assert again.user_attrs.get("baseline") is True  # a failed baseline runs again, in a new trial
    space.suggest(again)
    shared.study.tell(again, 0.9)
    running = shared.claim(space, target=3)
    space.suggest(running)
    assert not running.user_attrs.get("baseline")
    last = shared.claim(space, target=3)  # 1 complete + 1 running < 3: one more
    space.suggest(last)
    shared.study.tell(last, 0.5)
    assert shared.claim(space, target=3) is None  # complete, running, complete: the target is claimed
    shared.study.tell(running, 0.7)
    assert shared.claim(space, target=3) is None and shared.finished() == 3
    assert [t.number for t in shared.study.trials] == [0, 1, 2, 3]
    assert shared.claim(space, target=4) is not None  # a larger target extends the study


CLAIMER = textwrap.dedent(
    """
    import sys, time
    import optuna
    from tuner.config import config_from_dict
    from tuner.search_space import SearchSpace
    from tuner.study import open_study

    url, target = sys.argv[1], int(sys.argv[2])
    config = config_from_dict({"study": {"name": "claims"}})
    shared = open_study(config, url, data_fingerprint="same data")
    space = SearchSpace(config.search_space)
    mine = 0
    while (trial := shared.claim(space, target=target)) is not None:
        space.suggest(trial)
        time.sleep(0.01)
        shared.study.tell(trial, 0.5)
        mine += 1
    print(mine)
    """
)


def test_concurrent_claims_start_exactly_the_target_on_postgresql(tmp_path, postgres_url):
    """Four processes racing to claim 40 trials: exactly 40 start, numbered 0..39, one baseline."""
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMER)
    procs = [
        subprocess.Popen([sys.executable, str(script), postgres_url, "40"], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    counts = [int(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(counts) == 40
    study = optuna.load_study(study_name="claims", storage=driver_url(postgres_url))
    assert sorted(t.number for t in study.trials) == list(range(40))
    assert sum(bool(t.user_attrs.get("baseline")) for t in study.trials) == 1
    assert study.trials[0].user_attrs.get("baseline") is True  # the baseline is the first trial
