"""Sample efficiency: the trials the tuner needs, as a fraction of an exhaustive grid.

The goal (issue): the tuner finds a defense within 1 percentage point of the
validation utility of the best *adequate* point of an exhaustive grid over the
same space in at most 15 % as many trials as the grid has points.

What it does, on the built-in digits data and the default config:

1. Builds a grid over privtune's search space (``tuner/search_space.py``):
   DP off, or on with σ × C on log-spaced levels; weight decay off or on at
   log-spaced levels; dropout and label-smoothing levels that include 0;
   early stopping off or on at some patience levels. It is exhaustive over
   the levels: every combination, with σ and C only when DP is on and
   patience only when early stopping is on.
2. Evaluates every grid point once with the tuner's own trial code
   (``tuner.trial.evaluate_defense``, seed ``trial_seed(study.seed, index)``)
   and records validation and test utility, the realistic risk, adequacy and
   the weighted objective exactly as ``tuner.study`` computes them
   (``risk_view``, ``adequacy_constraint``, ``weighted_objective``). Results
   are cached in a JSON file (``--cache``; default under ``runs/``), so a
   rerun only replays the samplers.
3. The grid's best adequate point is the one with the highest *validation*
   utility among adequate points (the tuner selects on validation utility;
   the test utility is shown beside it).
4. Replays privtune's sampler (``tuner.study._sampler``: TPE with 8 random
   start-up trials, seeded as a new study with ``study.seed`` = the seed)
   over the same discrete space, with ``SearchSpace.suggest``'s parameter
   names, switches and order, the undefended baseline enqueued first, and the
   adequacy constraint set with ``trial.set_constraint`` (Optuna 5's TPE
   reads it from the trial; ``constraints_func`` is deprecated there). The
   objective returns the cached weighted objective. It counts the trials
   (the baseline included) until an adequate trial is within 1 pp of the
   grid's best adequate validation utility, per sampler seed, next to random
   search (``RandomSampler``) measured the same way.

Run from the repository root. On 2 busy cores the default grid (270 points)
takes about 3–4 minutes to evaluate, ``--quick`` (48 points) about 30 s; a
cached rerun takes seconds::

    .venv/bin/python benchmarks/sample_efficiency.py [--quick] [--seeds 10] [--cache PATH]

``--membership-prior`` re-scores the cached evaluations at another prior π
(risk, adequacy and objective from the same trained models, nothing is
retrained): a stress view in which adequacy binds, since at the default
π = 0.01 every point of the digits grid is adequate.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402

from defenses import DefenseConfig, DPSettings  # noqa: E402
from objectives import adequacy_constraint, exposure_constraint, ppv, weighted_objective  # noqa: E402
from objectives.stats import realistic_advantage  # noqa: E402
from tuner.config import RunConfig, default_config  # noqa: E402
from tuner.report import render_table  # noqa: E402
from tuner.search_space import BASELINE_ATTR  # noqa: E402
from tuner.study import ADEQUACY_CONSTRAINT, EXPOSURE_CONSTRAINT, _sampler, risk_view  # noqa: E402
from tuner.trial import Evaluation, evaluate_defense, trial_seed  # noqa: E402
from tuner.tune import prepare  # noqa: E402

warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")
warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
GOAL = 0.15        # trials / grid size
TOLERANCE = 0.01   # 1 percentage point of validation utility
EPS = 1e-12        # float slack in "within 1 pp"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Grid:
    """Levels per knob; "off" is added where the tuner's space holds it through a switch."""

    noise_multiplier: tuple[float, ...]   # σ, DP on only
    max_grad_norm: tuple[float, ...]      # C, DP on only
    weight_decay: tuple[float, ...]       # positive levels; off is added (weight_decay_on)
    dropout: tuple[float, ...]            # include 0.0 (the tuner's linear range holds it)
    label_smoothing: tuple[float, ...]    # include 0.0
    patience: tuple[int, ...]             # early stopping on; off is added

    def points(self) -> list[DefenseConfig]:
        """Every combination, the undefended baseline first (index 0)."""
        dps: list[DPSettings | None] = [None] + [
            DPSettings(noise_multiplier=s, max_grad_norm=c)
            for s, c in itertools.product(self.noise_multiplier, self.max_grad_norm)
        ]
        levels = itertools.product(
            dps,
            (0.0, *self.weight_decay),
            self.dropout,
            self.label_smoothing,
            (None, *self.patience),
        )
        return [
            DefenseConfig(
                dp=dp,
                weight_decay=wd,
                dropout=do,
                label_smoothing=ls,
                early_stopping_patience=patience,
            )
            for dp, wd, do, ls, patience in levels
        ]

    def describe(self) -> list[str]:
        return [
            f"DP-SGD: off | on with σ ∈ {list(self.noise_multiplier)} × C ∈ "
            f"{list(self.max_grad_norm)} (δ and accountant: the config's)",
            f"weight decay: off | {list(self.weight_decay)}",
            f"dropout: {list(self.dropout)}",
            f"label smoothing: {list(self.label_smoothing)}",
            f"early stopping: off | patience {list(self.patience)}",
        ]


# σ, C and weight decay: one level per half of the default log ranges [0.3, 5], [0.1, 10]
# and [1e-6, 0.1] (rounded); dropout and label smoothing: levels in [0, 0.6] and [0, 0.3].
GRIDS = {
    "default": Grid(
        noise_multiplier=(0.6, 2.5),
        max_grad_norm=(0.3, 3.0),
        weight_decay=(1e-5, 5e-3),
        dropout=(0.0, 0.3, 0.6),
        label_smoothing=(0.0, 0.15),
        patience=(2, 6),
    ),
    "quick": Grid(
        noise_multiplier=(0.6, 2.5),
        max_grad_norm=(1.0,),
        weight_decay=(1e-3,),
        dropout=(0.0, 0.3),
        label_smoothing=(0.0, 0.15),
        patience=(3,),
    ),
}


# --------------------------------------------------------------------------- evaluation


def constraints_of(config: RunConfig, risk: float, exposed: int | None) -> dict[str, float]:
    """The constraint values ``tuner.study`` sets on a trial (≤ 0 is feasible)."""
    out = {ADEQUACY_CONSTRAINT: adequacy_constraint(risk=risk, max_ppv=config.adequacy.max_ppv)}
    if config.adequacy.max_exposed is not None and exposed is not None:
        out[EXPOSURE_CONSTRAINT] = exposure_constraint(
            exposed=exposed, max_exposed=config.adequacy.max_exposed
        )
    return out


def record_of(
    config: RunConfig, index: int, seed: int, evaluation: Evaluation, seconds: float
) -> dict[str, Any]:
    """What the tuner would record for this trial, plus the operating points for re-scoring."""
    risk, advantage = risk_view(config, evaluation)
    exposed = None if evaluation.exposure is None else evaluation.exposure.count
    constraints = constraints_of(config, risk, exposed)
    return {
        "index": index,
        "seed": seed,
        "defense": evaluation.defense.to_dict(),
        "utility_validation": evaluation.utility_validation,
        "utility_test": evaluation.utility_test,
        "risk": risk,
        "advantage": advantage,
        "exposed": exposed,
        "constraints": constraints,
        "adequate": all(v <= 0 for v in constraints.values()),
        "objective": weighted_objective(
            utility=evaluation.utility_validation,
            advantage=advantage,
            risk_weight=config.objective.risk_weight,
        ),
        "epochs_run": evaluation.epochs_run,
        "epsilon": evaluation.epsilon,
        "points": [
            {"attack": p.attack, "alpha": p.target_fpr, "tpr": p.tpr, "fpr": p.fpr,
             "resolvable": p.resolvable}
            for p in evaluation.realistic.points
        ],
        "seconds": seconds,
    }


def cache_meta(config: RunConfig, fingerprint: str) -> dict[str, Any]:
    """Everything that changes an evaluation besides the defense and the seed."""
    return json.loads(json.dumps({
        "format": CACHE_FORMAT,
        "data_fingerprint": fingerprint,
        "recipe": config.recipe.to_dict(),
        "threat_model": dataclasses.asdict(config.threat_model),
        "adequacy": dataclasses.asdict(config.adequacy),
        "objective": dataclasses.asdict(config.objective),
        "study_seed": config.study.seed,
    }))


def _key(defense: DefenseConfig, seed: int) -> str:
    return json.dumps(defense.to_dict(), sort_keys=True) + f"|seed={seed}"


def load_cache(path: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("meta") != meta:
        print(f"cache {path}: made with other settings; not reused, will be overwritten",
              file=sys.stderr)
        return {}
    return stored["records"]


def save_cache(path: Path, meta: dict[str, Any], records: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "records": records}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def evaluate_grid(
    config: RunConfig, points: list[DefenseConfig], cache: Path
) -> tuple[list[dict[str, Any]], int]:
    """One record per grid point (cached); returns the records and how many were trained now."""
    prepared = prepare(config)
    meta = cache_meta(config, prepared.roles.fingerprint)
    stored = load_cache(cache, meta)
    records, fresh = [], 0
    started = time.perf_counter()
    for index, defense in enumerate(points):
        seed = trial_seed(config.study.seed, index)
        key = _key(defense, seed)
        if key not in stored:
            t0 = time.perf_counter()
            evaluation = evaluate_defense(prepared.context, defense, seed=seed)
            stored[key] = record_of(config, index, seed, evaluation, time.perf_counter() - t0)
            fresh += 1
            if fresh % 10 == 0:
                save_cache(cache, meta, stored)
                print(f"[{time.perf_counter() - started:5.0f}s] evaluated {index + 1}/{len(points)}",
                      file=sys.stderr, flush=True)
        records.append(stored[key])
    if fresh:
        save_cache(cache, meta, stored)
    return records, fresh


def rescore(records: list[dict[str, Any]], config: RunConfig, prior: float) -> list[dict[str, Any]]:
    """The same evaluations scored at another membership prior (realistic view).

    ``realistic_risk``'s definition: the largest PPV over resolvable operating
    points, and its advantage. The exposure count (if bounded) is kept as
    measured at the configured prior.
    """
    if config.objective.risk != "realistic":
        raise SystemExit("--membership-prior: only with objective.risk = realistic")
    out = []
    for rec in records:
        risk = max(ppv(tpr=p["tpr"], fpr=p["fpr"], prior=prior)
                   for p in rec["points"] if p["resolvable"])
        advantage = realistic_advantage(ppv=risk, prior=prior)
        constraints = constraints_of(config, risk, rec["exposed"])
        objective = weighted_objective(utility=rec["utility_validation"], advantage=advantage,
                                       risk_weight=config.objective.risk_weight)
        out.append({**rec, "risk": risk, "advantage": advantage, "constraints": constraints,
                    "adequate": all(v <= 0 for v in constraints.values()), "objective": objective})
    return out


# --------------------------------------------------------------------------- samplers


class GridSpace:
    """The grid as an Optuna space: ``SearchSpace.suggest``'s names, switches and order."""

    def __init__(self, grid: Grid, points: list[DefenseConfig]):
        self.grid = grid
        self.index = {_key(d, 0): i for i, d in enumerate(points)}

    def suggest(self, trial: optuna.Trial) -> int:
        """The grid index of the trial's defense."""
        g = self.grid
        dp_on = trial.suggest_categorical("dp", [False, True])
        stop_on = trial.suggest_categorical("early_stopping", [False, True])
        wd_on = trial.suggest_categorical("weight_decay_on", [False, True])
        dropout = trial.suggest_categorical("dropout", list(g.dropout))
        smoothing = trial.suggest_categorical("label_smoothing", list(g.label_smoothing))
        weight_decay = (
            trial.suggest_categorical("weight_decay", list(g.weight_decay)) if wd_on else 0.0
        )
        dp = None
        if dp_on:
            sigma = trial.suggest_categorical("noise_multiplier", list(g.noise_multiplier))
            clip = trial.suggest_categorical("max_grad_norm", list(g.max_grad_norm))
            dp = DPSettings(noise_multiplier=sigma, max_grad_norm=clip)
        patience = trial.suggest_categorical("patience", list(g.patience)) if stop_on else None
        defense = DefenseConfig(dp=dp, weight_decay=weight_decay, dropout=dropout,
                                label_smoothing=smoothing, early_stopping_patience=patience)
        return self.index[_key(defense, 0)]

    def draw_probability(self, defense: DefenseConfig) -> float:
        """The chance that one random-search trial lands on ``defense``.

        Each parameter is drawn uniformly, so each switch splits the draws in
        halves whatever the number of levels behind it: the grid points are
        not drawn uniformly (DP off gets half of the draws).
        """
        g = self.grid
        chance = 0.5 ** 3 / (len(g.dropout) * len(g.label_smoothing))  # dp, early stop, wd switches
        if defense.dp is not None:
            chance /= len(g.noise_multiplier) * len(g.max_grad_norm)
        if defense.weight_decay:
            chance /= len(g.weight_decay)
        if defense.early_stopping_patience is not None:
            chance /= len(g.patience)
        return chance

    @staticmethod
    def baseline_params() -> dict[str, Any]:
        """As ``SearchSpace.baseline_params``: every switch off, the linear ranges at 0."""
        return {"dp": False, "weight_decay_on": False, "dropout": 0.0, "label_smoothing": 0.0,
                "early_stopping": False}


def trials_needed(
    sampler: optuna.samplers.BaseSampler,
    space: GridSpace,
    records: list[dict[str, Any]],
    *,
    target: float,
    max_trials: int,
) -> int | None:
    """Trials (the baseline included) until an adequate one is within 1 pp of ``target``."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(space.baseline_params(), user_attrs={BASELINE_ATTR: True})
    hit: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        rec = records[space.suggest(trial)]
        for name, value in rec["constraints"].items():
            trial.set_constraint(name, value)
        if not hit and rec["adequate"] and rec["utility_validation"] >= target - TOLERANCE - EPS:
            hit.append(trial.number + 1)
            study.stop()
        return rec["objective"]

    study.optimize(objective, n_trials=max_trials, gc_after_trial=False)
    return hit[0] if hit else None


def sampler_for(kind: str, config: RunConfig, seed: int) -> optuna.samplers.BaseSampler:
    """privtune's sampler for a new study with ``study.seed = seed``, or random search alike."""
    seeded = dataclasses.replace(config, study=dataclasses.replace(config.study, seed=seed))
    if kind == "tpe":
        return _sampler(seeded, n_existing=0)
    return optuna.samplers.RandomSampler(seed=seed * 1_000_003)  # the seed _sampler gives TPE


# --------------------------------------------------------------------------- report


def _count(n: int | None, size: int, cap: int) -> str:
    return f">{cap} (not found)" if n is None else f"{n} ({n / size:.0%})"


def summarize(counts: list[int | None], size: int, cap: int) -> tuple[str, str, float]:
    """Median and worst as 'n (fraction)'; a miss counts as infinitely many trials."""
    values = [math.inf if n is None else n for n in counts]
    median, worst = statistics.median(values), max(values)
    med_txt = f">{cap}" if math.isinf(median) else f"{median:g} ({median / size:.1%})"
    worst_txt = f">{cap} (not found)" if math.isinf(worst) else f"{worst:g} ({worst / size:.1%})"
    return med_txt, worst_txt, median / size


def describe_grid(records: list[dict[str, Any]], space: GridSpace, config: RunConfig) -> float | None:
    """Print the grid's best adequate point and how easy the grid is; return the target utility."""
    size = len(records)
    adequate = [r for r in records if r["adequate"]]
    risks = [r["risk"] for r in records]
    print(f"  adequate points: {len(adequate)}/{size} ({len(adequate) / size:.0%}); "
          f"realistic risk over the grid {min(risks):.4f}..{max(risks):.4f}")
    if not adequate:
        print("  no adequate grid point: nothing to find")
        return None
    best = max(adequate, key=lambda r: (r["utility_validation"], r["objective"]))
    target = best["utility_validation"]
    ties = sum(r["utility_validation"] == target for r in adequate)
    near = [r for r in adequate if r["utility_validation"] >= target - TOLERANCE - EPS]
    print(f"  best adequate point (highest VALIDATION utility, as the tuner selects): "
          f"#{best['index']} {DefenseConfig.from_dict(best['defense']).describe()}: "
          f"validation {target:.4f}, test {best['utility_test']:.4f}, risk {best['risk']:.4f}; "
          f"{ties} point(s) tie at that validation utility")
    base = records[0]
    print(f"  undefended baseline (trial 1 of every study): validation "
          f"{base['utility_validation']:.4f}, test {base['utility_test']:.4f}, risk "
          f"{base['risk']:.4f}, {'adequate' if base['adequate'] else 'NOT adequate'}"
          + (" — already within 1 pp: every search succeeds at trial 1" if base in near else ""))
    utilities = sorted(r["utility_validation"] for r in records)
    n_near_off = sum(r["defense"]["dp"] is None for r in near)
    print(f"  hit set (adequate, validation ≥ {target - TOLERANCE:.4f}): {len(near)}/{size} points "
          f"= {len(near) / size:.1%} of the grid ({n_near_off} without DP); validation utility "
          f"over the grid: min {utilities[0]:.4f}, median {statistics.median(utilities):.4f}, "
          f"max {utilities[-1]:.4f}")
    p_hit = sum(space.draw_probability(DefenseConfig.from_dict(r["defense"])) for r in near)
    n_off = sum(r["defense"]["dp"] is None for r in records)
    random_mean = 1 + 1 / p_hit
    print(f"  one random-search trial hits with chance {p_hit:.1%} (the switches give DP off, "
          f"{n_off} of {size} points, half of the draws): random search needs {random_mean:.1f} "
          f"trials on average (the baseline, then 1/{p_hit:.3f}) = {random_mean / size:.1%} of the grid")
    if len(near) / size >= GOAL / 2 or random_mean / size <= GOAL:
        print(f"  NOTE: random search reaches the goal of {GOAL:.0%} on this grid, so the goal does "
              "not separate a good sampler from a blind one here: compare TPE with random search.")
    if len(adequate) == size:
        print("  NOTE: every grid point is adequate: the adequacy constraint does not bind here "
              "(try --membership-prior 0.4 or 0.5 for a view in which it does).")
    return target


def report(
    *,
    grid_name: str,
    grid: Grid,
    config: RunConfig,
    records: list[dict[str, Any]],
    seeds: int,
    max_trials: int,
    prior: float,
    setup_note: str,
) -> None:
    size = len(records)
    print(f"Sample efficiency of privtune's sampler vs an exhaustive grid ({grid_name} grid, digits)")
    print(f"  {setup_note}")
    print(f"  threat model: π = {prior:g}; adequate ⇔ realistic PPV ≤ {config.adequacy.max_ppv:g}; "
          f"objective J = validation {config.objective.utility} − "
          f"{config.objective.risk_weight:g} × advantage")
    print("  grid levels:")
    for line in grid.describe():
        print(f"    {line}")
    print(f"  grid size: {size} points, each evaluated once (seed = trial_seed(study.seed, index))")
    space = GridSpace(grid, [DefenseConfig.from_dict(r["defense"]) for r in records])
    target = describe_grid(records, space, config)
    if target is None:
        return

    labels = {"tpe": "TPE (privtune)", "random": "random search"}
    counts: dict[str, list[int | None]] = {kind: [] for kind in labels}
    rows = []
    for seed in range(seeds):
        row = {"sampler seed": str(seed)}
        for kind, label in labels.items():
            n = trials_needed(sampler_for(kind, config, seed), space, records,
                              target=target, max_trials=max_trials)
            counts[kind].append(n)
            row[f"{label}: trials (% of grid)"] = _count(n, size, max_trials)
        rows.append(row)
    print()
    print(render_table(rows, markdown=False), end="")
    print()
    summary = []
    for kind, label in labels.items():
        med_txt, worst_txt, med_frac = summarize(counts[kind], size, max_trials)
        summary.append({
            "sampler": label,
            "median trials (% of grid)": med_txt,
            "worst trials (% of grid)": worst_txt,
            f"goal: median ≤ {GOAL:.0%}": "met" if med_frac <= GOAL else "NOT met",
        })
    print(render_table(summary, markdown=False), end="")
    print(f"\n  {seeds} sampler seeds; each study enqueues the baseline first and stops at its first "
          f"hit or after {max_trials} trials (repeats of a grid point count as trials, as in the "
          "tuner).\n  TPE and random search share each seed, so their first 9 trials (the baseline "
          "and TPE's 8 random start-up trials) are the same points: the comparison is paired and "
          "differs only after trial 9.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 48-point grid (about 30 s)")
    parser.add_argument("--seeds", type=int, default=10, help="sampler seeds (default 10)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override training.epochs (default: the config's 30)")
    parser.add_argument("--cache", type=Path, default=None, help="JSON cache of grid evaluations")
    parser.add_argument("--max-trials", type=int, default=None,
                        help="cap per study (default: 2 × grid size)")
    parser.add_argument("--membership-prior", type=float, default=None,
                        help="re-score the cached evaluations at this prior π (stress view)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: much faster for this MLP on busy cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    grid_name = "quick" if args.quick else "default"
    grid = GRIDS[grid_name]
    config = default_config()
    if args.epochs is not None:
        config = dataclasses.replace(config, recipe=dataclasses.replace(config.recipe, epochs=args.epochs))
    tag = "" if args.epochs is None else f"_epochs{args.epochs}"
    cache = args.cache or ROOT / "runs" / "benchmarks" / f"sample_efficiency_{grid_name}{tag}.json"
    points = grid.points()
    started = time.perf_counter()
    records, fresh = evaluate_grid(config, points, cache)
    evaluated_s = time.perf_counter() - started
    prior = config.threat_model.membership_prior
    if args.membership_prior is not None and args.membership_prior != prior:
        prior = args.membership_prior
        records = rescore(records, config, prior)
    recipe = config.recipe
    setup_note = (
        f"data: built-in digits, default roles; training: the default recipe ({recipe.epochs} epochs"
        + (", set by --epochs" if args.epochs is not None else "")
        + f", batch {recipe.batch_size}, lr {recipe.learning_rate:g}, {recipe.optimizer}), "
        f"torch threads {args.threads}\n  grid evaluation: {fresh} trained now ({evaluated_s:.0f} s), "
        f"{len(points) - fresh} from the cache {cache}"
        + ("" if prior == config.threat_model.membership_prior
           else f"\n  RE-SCORED at π = {prior:g} (--membership-prior) from the same evaluations")
    )
    report(grid_name=grid_name, grid=grid, config=config, records=records, seeds=args.seeds,
           max_trials=args.max_trials or 2 * len(points), prior=prior, setup_note=setup_note)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
