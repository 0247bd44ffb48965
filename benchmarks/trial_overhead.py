"""What one trial costs next to training its target model alone (goal: at most 2×).

A trial (``tuner.trial.evaluate_defense``) trains the target, the attacker's
K reference models (K = 2 in the default config), then attacks and scores.
This times it against ``defenses.train_model`` for the target alone, called
with the arguments ``tuner/trial.py``'s ``_train`` passes for a target (the
config's recipe and model, the validation role, ε tracked), on the default
digits study (``tuner.tune.prepare`` on the built-in default config).

Two defenses: a non-private one (dropout 0.2, weight decay 1e-3) and DP-SGD
(σ = 1, C = 1); no early stopping, so every run trains all its epochs. The
trial and the target-alone run take turns (alternating order), with the same
seed, and ε's caches are cleared before each call, as for a fresh trial
(a study's trials rarely share σ). The ratio is the median of the paired
ratios over ``--repeats`` repetitions.

A trial is timed both ways it can run (:mod:`tuner.references`): all in
this process, and with the reference models training in a helper process
beside the target, which the tuner uses when ``training.processes``
resolves to 2 (the default on a CPU with two usable cores and one thread per
process). The verdict is for the way the tuner runs here.

It measures whatever ``evaluate_defense`` does at the time it runs, with the
torch threads ``prepare`` sets (``--threads N`` overrides). Run from the
repository root:

    .venv/bin/python benchmarks/trial_overhead.py [--repeats 5] [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defenses import DefenseConfig, DPSettings, train_model  # noqa: E402
from defenses import epsilon as epsilon_module  # noqa: E402
from tuner.config import default_config  # noqa: E402
from tuner.references import ReferenceTraining  # noqa: E402
from tuner.report import render_table  # noqa: E402
from tuner.trial import TrialContext, evaluate_defense, trial_seed  # noqa: E402
from tuner.tune import prepare  # noqa: E402
from tuner.user_code import build_target_model  # noqa: E402

GOAL = 2.0
DEFENSES = {
    "non-DP (dropout 0.2, wd 1e-3)": DefenseConfig(dropout=0.2, weight_decay=1e-3),
    "DP (σ=1, C=1)": DefenseConfig(dp=DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)),
}
_EPSILON_CACHES = (
    "_cached_epsilon",
    "_cached_curve_epsilon",
    "_curve_discretization",
    "_one_step_rdp",
)
warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")


def clear_epsilon_caches() -> None:
    for name in _EPSILON_CACHES:
        cached = getattr(epsilon_module, name, None)
        if cached is not None:
            cached.cache_clear()


def train_target(context: TrialContext, defense: DefenseConfig, seed: int) -> None:
    """The target alone, as ``tuner.trial._train`` trains it."""
    roles, utility = context.roles, context.utility
    train_model(
        lambda: build_target_model(context.config, roles, dropout=defense.dropout),
        defense,
        context.recipe,
        (roles.members.X, roles.members.y),
        seed=seed,
        device=context.device,
        validation=(roles.validation.X, roles.validation.y),
        validation_score=lambda logits, labels: utility.score(labels, logits),
        track_epsilon=True,
    )


def timed(call) -> float:  # noqa: ANN001
    clear_epsilon_caches()
    begin = time.perf_counter()
    call()
    return time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--threads", type=int, help="torch threads (default: what prepare() sets)")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    prepared = prepare(default_config())  # sets torch's threads as a study would
    if args.threads:
        torch.set_num_threads(args.threads)
    context = prepared.context
    tuner_references = prepared.references  # training.processes as the tuner resolves it
    tuner_references.start()  # what tuner.tune.run_study does
    modes = {"one process": ReferenceTraining(context, 1)}
    if tuner_references.beside:
        modes["references beside"] = tuner_references
    tuner_mode = "references beside" if tuner_references.beside else "one process"
    sizes = context.roles.sizes()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; digits: "
        f"{sizes['members']} members, K = {context.n_reference_models} reference models, "
        f"{context.recipe.epochs} epochs, batch {context.recipe.batch_size}; "
        f"training.processes resolves to {tuner_references.processes} ({tuner_mode})",
        flush=True,
    )
    rows, verdicts = [], []
    for label, defense in DEFENSES.items():
        seed = trial_seed(prepared.config.study.seed, 0)
        for references in modes.values():  # warm-up (lazy imports, first allocations)
            evaluate_defense(context, defense, seed=seed, references=references)
        times: dict[str, list[float]] = {name: [] for name in [*modes, "target"]}
        for rep in range(repeats):
            seed = trial_seed(prepared.config.study.seed, rep + 1)
            calls = [
                *(
                    (name, lambda r=references, s=seed: evaluate_defense(context, defense, seed=s, references=r))
                    for name, references in modes.items()
                ),
                ("target", lambda s=seed: train_target(context, defense, s)),
            ]
            for name, call in calls if rep % 2 == 0 else reversed(calls):
                times[name].append(timed(call))
            print(f"  {label}: {rep + 1}/{repeats}", file=sys.stderr, flush=True)
        for name in modes:
            ratio = statistics.median(t / s for t, s in zip(times[name], times["target"]))
            rows.append(
                {
                    "defense": label,
                    "trial runs": name + (" (the tuner's)" if name == tuner_mode else ""),
                    "trial s (median)": f"{statistics.median(times[name]):.3f}",
                    "target alone s (median)": f"{statistics.median(times['target']):.3f}",
                    "trial / target": f"{ratio:.2f}",
                }
            )
            if name == tuner_mode:
                verdicts.append(
                    f"{label}: trial / target = {ratio:.2f} "
                    f"({'meets' if ratio <= GOAL else 'misses'} the goal ≤ {GOAL:g})"
                )
    print(f"\nOne trial vs its target alone ({repeats} interleaved repetitions)")
    print(render_table(rows, markdown=False), end="")
    print("\n" + "\n".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
