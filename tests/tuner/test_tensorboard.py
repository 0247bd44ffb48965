"""TensorBoard output of a real run, read back from its event files and served by TensorBoard.

The event files are read with TensorBoard's own reader (EventAccumulator) and
compared with the study's records; then a real `tensorboard` server serves the
run folder on loopback and its HParams plugin is queried over HTTP; finally a
headless Chromium renders the HParams dashboard to a PNG.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata

from tuner.config import config_from_dict
from tuner.records import trial_attrs
from tuner.tensorboard import METRICS, TensorBoardLogger, hparam_domains

COMPLETE = optuna.trial.TrialState.COMPLETE
EVERYTHING = {"scalars": 0, "images": 0, "tensors": 0}


def f32(value: float) -> float:
    """What a TensorBoard scalar holds for ``value`` (scalars are stored as float32)."""
    return float(np.float32(value))


def accumulator(path: Path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance=EVERYTHING)
    acc.Reload()
    return acc


# --- domains (no run needed) ------------------------------------------------------


def _domain(d):
    info = api_pb2.HParamInfo()
    d.update_hparam_info(info)
    if info.HasField("domain_discrete"):
        return [v.string_value for v in info.domain_discrete.values]
    return (info.domain_interval.min_value, info.domain_interval.max_value)


def test_domains_of_the_default_search_space():
    domains = {name: _domain(d) for name, d in hparam_domains(config_from_dict({}).search_space).items()}
    assert domains == {
        "dp": ["off", "on"],
        "baseline": ["no", "yes"],
        "max_grad_norm": (0.0, 10.0),
        "noise_multiplier": (0.0, 5.0),
        "weight_decay": (0.0, 0.1),
        "dropout": (0.0, 0.6),
        "label_smoothing": (0.0, 0.3),
        "early_stopping_patience": (0.0, 10.0),
    }


def test_domains_drop_removed_knobs_and_keep_the_baselines_off_values():
    space = config_from_dict(
        {
            "search_space": {
                "dp": {"use": [True], "noise_multiplier": None, "target_epsilon": {"low": 1, "high": 8}},
                "weight_decay": 0.001,
                "dropout": None,
                "early_stopping": {"use": [False]},
            }
        }
    ).search_space
    domains = {name: _domain(d) for name, d in hparam_domains(space).items()}
    assert domains == {
        "dp": ["off", "on"],  # forced on, but the baseline is still logged with DP off
        "baseline": ["no", "yes"],
        "max_grad_norm": (0.0, 10.0),
        "target_epsilon": (0.0, 8.0),
        "weight_decay": (0.0, 0.001),
        "label_smoothing": (0.0, 0.3),
    }


# --- event files of a real run ------------------------------------------------------


def test_each_trials_logged_figures_equal_the_study_records(small_run):
    study = small_run.study
    completed = [t for t in study.trials if t.state == COMPLETE]
    assert len(completed) == small_run.config["study"]["trials"]
    assert any(trial_attrs(t)["epsilon"] is not None for t in completed)  # DP trials ran
    for trial in completed:
        attrs = trial_attrs(trial)
        acc = accumulator(small_run.root / "tb" / f"trial-{trial.number:04d}")
        last = {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}
        assert last["metrics/utility_test"] == f32(attrs["utility_test"])
        assert last["metrics/utility_validation"] == f32(attrs["utility_validation"])
        assert last["metrics/realistic_ppv"] == f32(attrs["realistic"]["risk"])
        assert last["metrics/worst_case_auc"] == f32(attrs["worst_case"]["auc"])
        assert last["metrics/worst_case_ppv"] == f32(attrs["worst_case"]["risk"])
        assert last["metrics/adequate"] == float(attrs["realistic"]["adequate"])
        # per-epoch curves: one point per epoch run; ε only for DP, its last value the trial's ε
        assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, attrs["epochs_run"] + 1))
        assert len(acc.Scalars("validation/utility")) == attrs["epochs_run"]
        if attrs["epsilon"] is None:
            assert "metrics/epsilon" not in last and "privacy/epsilon" not in last
        else:
            assert last["metrics/epsilon"] == f32(attrs["epsilon"])
            assert last["privacy/epsilon"] == f32(attrs["epsilon"])
            eps = [e.value for e in acc.Scalars("privacy/epsilon")]
            assert eps == sorted(eps)  # ε only grows


def test_each_trial_has_an_hparams_session_with_its_defense(small_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    for trial in small_run.study.trials:
        if trial.state != COMPLETE:
            continue
        acc = accumulator(small_run.root / "tb" / f"trial-{trial.number:04d}")
        start = plugin_data_pb2.HParamsPluginData.FromString(
            acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
        ).session_start_info
        end = plugin_data_pb2.HParamsPluginData.FromString(
            acc.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content
        ).session_end_info
        assert end.status == api_pb2.STATUS_SUCCESS
        assert start.group_name == f"trial-{trial.number:04d}"
        values = {k: (v.string_value or v.number_value) for k, v in start.hparams.items()}
        defense = trial_attrs(trial)["defense"]
        dp = defense["dp"]
        assert values["dp"] == ("on" if dp else "off")
        assert values["baseline"] == ("yes" if trial.user_attrs.get("baseline") else "no")
        assert values["noise_multiplier"] == (dp["noise_multiplier"] if dp else 0.0)
        assert values["max_grad_norm"] == (dp["max_grad_norm"] if dp else 0.0)
        assert values["weight_decay"] == defense["weight_decay"]
        assert values["dropout"] == defense["dropout"]
        assert values["label_smoothing"] == defense["label_smoothing"]
        assert "early_stopping_patience" not in values  # removed from this run's space
        assert "target_epsilon" not in values


def test_the_experiment_summary_declares_domains_and_metrics(small_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = accumulator(small_run.root / "tb")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    ).experiment
    infos = {i.name: i for i in experiment.hparam_infos}
    assert sorted(infos) == sorted(
        ["dp", "baseline", "noise_multiplier", "max_grad_norm", "weight_decay", "dropout", "label_smoothing"]
    )
    assert [v.string_value for v in infos["dp"].domain_discrete.values] == ["off", "on"]
    assert (infos["noise_multiplier"].domain_interval.min_value, infos["noise_multiplier"].domain_interval.max_value) == (
        0.0,
        2.0,  # the run's search_space.dp.noise_multiplier.high
    )
    assert [m.name.tag for m in experiment.metric_infos] == [m.tag for m in METRICS]
    assert {m.name.tag: m.display_name for m in experiment.metric_infos}["metrics/realistic_ppv"] == "realistic PPV"


def test_study_figures_and_the_recommendation_are_logged(small_run):
    acc = accumulator(small_run.root / "tb" / "study")
    n = sum(t.state == COMPLETE for t in small_run.study.trials)
    # The live figures are drawn at most every 30 s (none at all in a short run).
    if "study/frontier" in acc.Tags()["images"]:
        steps = [e.step for e in acc.Images("study/frontier")]
        assert steps == sorted(set(steps)) and all(1 <= step <= n for step in steps)
    # The final figures are the report's PNG files, byte for byte.
    for name in ("frontier", "roc", "ppv_vs_prior"):
        (event,) = acc.Images(f"recommendation/{name}")
        assert event.step == n
        assert event.encoded_image_string == (small_run.root / "figures" / f"{name}.png").read_bytes()
    text = acc.Tensors("recommendation/summary/text_summary")[-1].tensor_proto.string_val[0].decode()
    head = "NO DEFENSE NEEDED" if small_run.result.returncode == 0 else "NO ADEQUATE DEFENSE"
    assert head in text or "RECOMMENDED DEFENSE" in text


def test_live_study_figures_are_drawn_when_the_interval_has_passed(small_run, tmp_path):
    study = small_run.study
    n = sum(t.state == COMPLETE for t in study.trials)
    eager = TensorBoardLogger(tmp_path / "eager", figure_interval_s=0.0)
    eager.study_updated(study)
    eager.study_updated(study)  # no new trial: nothing to redraw
    lazy = TensorBoardLogger(tmp_path / "lazy", figure_interval_s=3600.0)
    lazy.study_updated(study)  # within the first interval
    for logger in (eager, lazy):
        logger.close()
    drawn = accumulator(tmp_path / "eager" / "study")
    assert [e.step for e in drawn.Images("study/frontier")] == [n]
    assert not (tmp_path / "lazy" / "study").exists()


def test_report_embeds_the_figures(small_run):
    report = (small_run.root / "report.md").read_text()
    for name in ("frontier", "roc", "ppv_vs_prior"):
        assert f"](figures/{name}.png)" in report
        with Image.open(small_run.root / "figures" / f"{name}.png") as image:
            assert image.format == "PNG" and image.size[0] >= 600
    assert "worst-case tuning would have" in report  # what a worst-case-driven choice would cost


# --- a real TensorBoard server ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard_server(small_run):
    """`tensorboard --logdir RUN/tb` on a free loopback port; yields its base URL."""
    port = _free_port()
    binary = Path(sys.executable).with_name("tensorboard")
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "tensorboard.main"]
    process = subprocess.Popen(
        [*command, "--logdir", str(small_run.root / "tb"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    n_runs = sum(t.state == COMPLETE for t in small_run.study.trials) + 2  # trials, ".", "study"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                with urllib.request.urlopen(f"{base}/data/runs", timeout=5) as response:
                    if len(json.loads(response.read())) >= n_runs:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "tensorboard did not load the run folder within 120 s"
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_tensorboard_serves_the_hparams_experiment_and_sessions(small_run, tensorboard_server):
    experiment = _post(f"{tensorboard_server}/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {i["name"] for i in experiment["hparamInfos"]} >= {"dp", "baseline", "noise_multiplier", "dropout"}
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [m.tag for m in METRICS]

    groups = _post(
        f"{tensorboard_server}/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [{"metric": {"tag": m.tag, "group": ""}} for m in METRICS],
            "startIndex": 0,
            "sliceSize": 1000,
        },
    )["sessionGroups"]
    completed = {f"trial-{t.number:04d}": t for t in small_run.study.trials if t.state == COMPLETE}
    assert sorted(g["name"] for g in groups) == sorted(completed)
    for group in groups:
        attrs = trial_attrs(completed[group["name"]])
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values["metrics/utility_test"] == pytest.approx(f32(attrs["utility_test"]), rel=1e-12)
        assert values["metrics/realistic_ppv"] == pytest.approx(f32(attrs["realistic"]["risk"]), rel=1e-12)
        assert group["hparams"]["dp"] == ("on" if attrs["defense"]["dp"] else "off")


# --- a headless browser -----------------------------------------------------------


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_chromium_renders_the_hparams_dashboard(small_run, tensorboard_server, tmp_path):
    """A screenshot of the HParams table; in CI (CI set) a missing Chromium is a failure."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it and runs this test")
    shot = tmp_path / "hparams.png"
    result = subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1400,900", "--virtual-time-budget=15000", f"{tensorboard_server}/#hparams",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.is_file(), result.stderr[-2000:]
    keep = os.environ.get("PRIVTUNE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "hparams.png")
    with Image.open(shot) as image:
        assert image.size == (1400, 900)
        pixels = np.asarray(image.convert("RGB"))
    # TensorBoard's orange app bar across the top: the app loaded (not an error page).
    header = pixels[5:50, :, :].reshape(-1, 3)
    orange = (header[:, 0] > 200) & (header[:, 1] > 90) & (header[:, 1] < 160) & (header[:, 2] < 60)
    assert orange.mean() > 0.5
    # Below it, the dashboard drew text and widgets (many distinct shades), not a blank page.
    body = pixels[100:, :, :].reshape(-1, 3)
    assert len(np.unique(body, axis=0)) > 50


def test_report_redraws_the_figures_from_the_study_alone(small_run, privtune, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(small_run.root, run, ignore=shutil.ignore_patterns("tb", "figures"))
    result = privtune("report", str(run), cwd=tmp_path)
    assert result.returncode == small_run.result.returncode, result.stderr
    acc = accumulator(small_run.root / "tb" / "study")
    for name in ("frontier", "roc", "ppv_vs_prior"):
        # the same pixels the run drew from its in-memory results, now from study.db only
        assert (run / "figures" / f"{name}.png").read_bytes() == acc.Images(f"recommendation/{name}")[-1].encoded_image_string
    assert "![Privacy–utility frontier](figures/frontier.png)" in (run / "report.md").read_text()
