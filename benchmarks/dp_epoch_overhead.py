"""What one DP-SGD epoch costs next to a non-private one (goal: at most 2×).

Two settings, each with the model, batch size and member set privtune trains
on: the default digits study (``tuner/default.yaml``: scikit-learn's digits,
359 members, MLP [128], batch 64) and UCI Adult (``configs/adult.yaml``, read
through privtune's own CSV loader from ``../shared/data/adult``: 4,884
members, MLP [64], batch 256). DP is σ = 1, C = 1.

Two tables:

1. *Training pass*: privtune's epoch function (``defenses.training``:
   ``_start_run`` builds the run exactly as ``train_model`` does, then
   ``_Run.epoch`` trains one pass) for non-private training, DP-SGD in the
   grad-sample mode privtune chooses (ghost clipping for an MLP), and, for
   reference, Opacus' general ``hooks`` mode. Setup (building, privatizing)
   is done once, outside the clock. The modes take turns within every
   repetition (rotating order), each sample is ``--block`` epochs, and the
   ratio is the median over repetitions of the paired ratio.
2. *train_model epoch*: whole ``train_model`` runs as the tuner starts a
   target model (validation scored after each epoch, DP with ε tracked),
   DP and non-DP runs interleaved; an epoch is the time between two
   consecutive ``on_epoch_end`` calls, so setup and epoch 1 are left out.
   "median" is the typical epoch (an ε curve point for DP), "mean" includes
   the last epoch's exact ε query. ε's caches are cleared before each run,
   as for a fresh trial (a study's trials rarely share σ).

Two more settings, outside the goal, show how the ratio scales: the same
data with a wider MLP [512, 512]. Ghost clipping costs a second backward
pass plus a per-step overhead that hardly depends on the model (Opacus'
Python hooks, the per-sample norms, the noise): on a tiny model, whose whole
step takes a fifth of a millisecond, the overhead dominates; on a larger
one the ratio falls toward the two backward passes. Opacus' ``hooks`` mode,
by contrast, grows with the model (it materializes per-sample gradients).
``--quick`` skips them.

Only ratios measured side by side mean anything on a shared machine. Run
from the repository root:

    .venv/bin/python benchmarks/dp_epoch_overhead.py [--repeats 20] [--quick] [--only digits|adult]
        [--threads N]

Threads are what ``tuner.tune.prepare`` sets for the config (as in a
study); ``--threads N`` overrides that.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defenses import DefenseConfig, DPSettings, TrainedModel, train_model  # noqa: E402
from defenses import epsilon as epsilon_module  # noqa: E402
from defenses.batching import as_device_tensors  # noqa: E402
from defenses.dp_sgd import release_model  # noqa: E402
from defenses.training import _Run, _start_run  # noqa: E402
from tuner.config import RunConfig, default_config, load_config  # noqa: E402
from tuner.report import render_table  # noqa: E402
from tuner.tune import Prepared, prepare  # noqa: E402
from tuner.user_code import build_target_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GOAL = 2.0
DP = DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0))
# label → (defense, grad_sample_mode override); None = privtune's choice
MODES: dict[str, tuple[DefenseConfig, str | None]] = {
    "non-DP": (DefenseConfig(), None),
    "DP (privtune)": (DP, None),
    "DP (hooks)": (DP, "hooks"),
}
warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")


@dataclass(frozen=True)
class Setting:
    name: str
    load: Callable[[], RunConfig]
    block: int  # epochs per timed sample (digits epochs are ~2 ms)
    goal: bool = True  # a setting the goal is about (the others show how the ratio scales)
    repeats: int | None = None  # fewer samples where Opacus' hooks mode takes seconds an epoch


def _wider(load: Callable[[], RunConfig], hidden: tuple[int, ...]) -> Callable[[], RunConfig]:
    """The same study with a larger MLP: where the fixed per-step cost of DP stops dominating."""
    return lambda: replace((cfg := load()), recipe=replace(cfg.recipe, hidden_sizes=hidden))


def _adult() -> RunConfig:
    return load_config(ROOT / "configs" / "adult.yaml")


SETTINGS = (
    Setting("digits", default_config, block=5),
    Setting("adult", _adult, block=1),
    Setting("digits-512x2", _wider(default_config, (512, 512)), block=2, goal=False, repeats=8),
    Setting("adult-512x2", _wider(_adult, (512, 512)), block=1, goal=False, repeats=4),
)


def start(prepared: Prepared, label: str, seed: int) -> _Run:
    defense, mode = MODES[label]
    roles, context = prepared.roles, prepared.context
    X, y = as_device_tensors((roles.members.X, roles.members.y), context.device, role="train")
    return _start_run(
        lambda: build_target_model(prepared.config, roles, dropout=defense.dropout),
        defense,
        prepared.config.recipe,
        X,
        y,
        seed=seed,
        device=context.device,
        grad_sample_mode=mode,
    )


def training_pass(prepared: Prepared, *, repeats: int, block: int) -> dict[str, list[float]]:
    """Seconds per epoch of each mode, one sample per repetition, modes interleaved."""
    runs = {label: start(prepared, label, seed=1) for label in MODES}
    for run in runs.values():  # warm-up: first-call allocations, lazy imports
        run.epoch()
    labels = list(runs)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for rep in range(repeats):
        shift = rep % len(labels)
        for label in labels[shift:] + labels[:shift]:
            begin = time.perf_counter()
            for _ in range(block):
                runs[label].epoch()
            times[label].append((time.perf_counter() - begin) / block)
    for run in runs.values():
        release_model(run.net)
    return times


def train_model_epochs(prepared: Prepared, *, runs: int) -> dict[str, list[float]]:
    """Epoch-to-epoch intervals of whole train_model runs (epochs 2..N), DP / non-DP alternating."""
    context, roles = prepared.context, prepared.roles
    utility = context.utility
    intervals: dict[str, list[float]] = {"non-DP": [], "DP (privtune)": []}
    for rep in range(runs):
        order = list(intervals) if rep % 2 == 0 else list(reversed(intervals))
        for label in order:
            defense = MODES[label][0]
            stamps: list[float] = []
            clear_epsilon_caches()  # a fresh run: a study's trials rarely share σ
            trained: TrainedModel = train_model(
                lambda d=defense: build_target_model(prepared.config, roles, dropout=d.dropout),
                defense,
                context.recipe,
                (roles.members.X, roles.members.y),
                seed=rep,
                device=context.device,
                validation=(roles.validation.X, roles.validation.y),
                validation_score=lambda logits, labels: utility.score(labels, logits),
                on_epoch_end=lambda _log: stamps.append(time.perf_counter()),
            )
            assert trained.epochs_run == len(stamps)
            intervals[label] += [b - a for a, b in zip(stamps, stamps[1:])]
    return intervals


_EPSILON_CACHES = (
    "_cached_epsilon",
    "_cached_curve_epsilon",
    "_curve_discretization",
    "_one_step_rdp",
)


def clear_epsilon_caches() -> None:
    for name in _EPSILON_CACHES:
        cached = getattr(epsilon_module, name, None)
        if cached is not None:
            cached.cache_clear()


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="samples per mode (training pass)")
    parser.add_argument("--block", type=int, help="epochs per sample (default: per setting)")
    parser.add_argument("--runs", type=int, default=3, help="train_model runs per mode")
    parser.add_argument("--quick", action="store_true", help="5 repeats, 1 train_model run each")
    parser.add_argument("--only", choices=[s.name for s in SETTINGS])
    parser.add_argument("--threads", type=int, help="torch threads (default: what prepare() sets)")
    args = parser.parse_args()
    repeats, runs = (5, 1) if args.quick else (args.repeats, args.runs)
    print(f"torch {torch.__version__}; DP: σ=1, C=1", flush=True)

    pass_rows, model_rows, ratios = [], [], []
    for setting in SETTINGS:
        if args.only and setting.name != args.only:
            continue
        if args.quick and not setting.goal:
            continue
        if setting.name.startswith("adult") and not (DATA / "adult").is_dir():
            print(f"adult skipped: {DATA / 'adult'} is missing", file=sys.stderr)
            continue
        prepared = prepare(setting.load())  # sets torch's threads as a study would
        if args.threads:
            torch.set_num_threads(args.threads)
        recipe = prepared.config.recipe
        shape = (
            f"n={len(prepared.roles.members)}, d={prepared.roles.n_features}, "
            f"MLP {list(recipe.hidden_sizes)}, batch {recipe.batch_size}, "
            f"{torch.get_num_threads()} thread(s)"
        )
        print(f"{setting.name}: {shape} ...", file=sys.stderr, flush=True)
        times = training_pass(
            prepared, repeats=min(repeats, setting.repeats or repeats), block=args.block or setting.block
        )
        base = times["non-DP"]
        # Both take ceil(n / batch) steps an epoch (Opacus: int(1/q) with q = 1/ceil(n / batch)).
        steps = math.ceil(len(prepared.roles.members) / recipe.batch_size)
        for label, samples in times.items():
            ratio = paired_ratio(samples, base)
            if label == "DP (privtune)":
                extra = 1e3 * (statistics.median(samples) - statistics.median(base)) / steps
                ratios.append((setting, ratio, extra))
            pass_rows.append(
                {
                    "data": setting.name,
                    "setup": shape,
                    "mode": label,
                    "epoch ms (median)": f"{1e3 * statistics.median(samples):.2f}",
                    "ms per step": f"{1e3 * statistics.median(samples) / steps:.3f}",
                    "× non-DP": f"{ratio:.2f}",
                }
            )
        if not setting.goal:
            continue
        intervals = train_model_epochs(prepared, runs=runs)
        base_runs = intervals["non-DP"]
        median_base, mean_base = statistics.median(base_runs), statistics.mean(base_runs)
        for label, samples in intervals.items():
            model_rows.append(
                {
                    "data": setting.name,
                    "mode": label,
                    "epochs": str(len(samples)),
                    "epoch ms (median)": f"{1e3 * statistics.median(samples):.2f}",
                    "epoch ms (mean)": f"{1e3 * statistics.mean(samples):.2f}",
                    "× non-DP (median)": f"{statistics.median(samples) / median_base:.2f}",
                    "× non-DP (mean)": f"{statistics.mean(samples) / mean_base:.2f}",
                }
            )

    print(f"\nTraining pass (privtune's epoch function; {repeats} interleaved samples per mode)")
    print(render_table(pass_rows, markdown=False), end="")
    print("\ntrain_model epochs (training pass + validation + ε for DP; epochs 2..N of each run)")
    print(render_table(model_rows, markdown=False), end="")
    print()
    for setting, ratio, extra in ratios:
        verdict = ("meets" if ratio <= GOAL else "misses") + f" the goal ≤ {GOAL:g}"
        print(
            f"{setting.name}: DP epoch / non-DP epoch = {ratio:.2f} "
            f"({verdict if setting.goal else 'scaling check, no goal'}); DP adds {extra:.2f} ms per step"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
