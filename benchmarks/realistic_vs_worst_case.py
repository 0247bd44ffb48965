"""How far the realistic view sits from the worst case, on real data.

For UCI Adult (``configs/adult.yaml``) and 5,000 MNIST digits
(``../shared/data/mnist5k``), each with the undefended baseline and one
strong DP-SGD setting (target ε = 1), this trains the target, the realistic
attacker's K reference models and the audit's S shadow models, and prints
one table with, per attack:

* the worst case: oracle AUC and TPR at 0.1 % FPR (prior ½, thresholds
  chosen knowing the members), for LiRA online with S IN/OUT shadows and
  for every realistic attack on the same target;
* the realistic view: the attacker's PPV at π = 0.5, 0.1, 0.01, 0.001
  with thresholds calibrated on its own non-members (at each π the attacker
  takes its best resolvable α), the realized FPR beside each target α, the
  break-even prior (the largest π at which the attack stays at or below the
  bound), and the members exposed (posterior above the bound at the
  configured π, for attacks with a likelihood ratio);
* the test utility of the target.

Run from the repository root (it takes several minutes on two cores):

    .venv/bin/python benchmarks/realistic_vs_worst_case.py [--shadow-models 16] [--only adult|mnist]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import sys
import time
from pathlib import Path

import warnings

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from defenses import DefenseConfig, DPSettings, resolve_device  # noqa: E402
from objectives import ppv, utility_metric  # noqa: E402
from tuner.audit import AuditResult, run_audit  # noqa: E402
from tuner.config import config_from_dict, load_config  # noqa: E402
from tuner.data import LabelledData  # noqa: E402
from tuner.report import render_table  # noqa: E402
from tuner.roles import split_roles  # noqa: E402
from tuner.trial import TrialContext, build_context  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
warnings.filterwarnings("ignore", message=".*Optimal order is the largest alpha.*")  # Opacus' σ search
PRIORS = (0.5, 0.1, 0.01, 0.001)
ATTACKS = ["loss", "confidence", "modified_entropy", "rmia", "lira_offline"]
STRONG_DP = DefenseConfig(dp=DPSettings(target_epsilon=1.0, max_grad_norm=1.0, accountant="rdp"))


def mnist_5k() -> LabelledData:
    """784 pixel columns 0–255 then the label, no header; pixels scaled to [0, 1]."""
    with gzip.open(DATA / "mnist5k" / "mnist_5k.csv.gz", "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    X, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    return LabelledData(
        X=X,
        y=y,
        feature_names=tuple(f"pixel{i}" for i in range(X.shape[1])),
        class_names=tuple(str(c) for c in range(10)),
        name="mnist_5k",
    )


def adult_context() -> TrialContext:
    from tuner.tune import prepare

    config = load_config(ROOT / "configs" / "adult.yaml")
    config = dataclasses.replace(config, threat_model=dataclasses.replace(config.threat_model, attacks=tuple(ATTACKS)))
    return prepare(config).context


def mnist_context() -> TrialContext:
    config = config_from_dict(
        {
            "study": {"name": "mnist5k"},
            "model": {"hidden_sizes": [128]},
            "training": {"epochs": 20, "batch_size": 64, "learning_rate": 0.05},
            "threat_model": {"attacks": ATTACKS},
        }
    )
    data = mnist_5k()
    roles = split_roles(data, config.data.roles, config.data.pool, seed=config.study.seed)
    return build_context(config, roles, resolve_device(config.device), utility_metric(config.objective.utility))


def rows_for(data_name: str, setting: str, result: AuditResult) -> list[dict[str, str]]:
    evaluation = result.evaluation
    realistic = evaluation.realistic
    exposure, false_alarms = evaluation.exposure, evaluation.false_exposure
    per_attack = dict(exposure.per_attack) if exposure is not None else {}
    false_per_attack = dict(false_alarms.per_attack) if false_alarms is not None else {}
    utility = f"{evaluation.utility_test:.4f}"
    rows = []
    blank = {f"PPV π={pi:g}": "—" for pi in PRIORS}

    def oracle_cells(attack) -> dict[str, str]:  # noqa: ANN001
        tpr = attack.tpr_at_fpr[0.001]
        unresolved = attack.n_nonmembers * 0.001 < 1.0
        return {"AUC (oracle)": f"{attack.auc:.3f}", "TPR@0.1% (oracle)": f"{tpr:.3f}" + ("*" if unresolved else "")}

    for label, attack in (
        (f"lira_online ({result.shadow_models} shadows)", result.online),
        (f"lira_online pooled ×{result.shadow_models + 1}", result.online_pooled),
    ):
        rows.append(
            {
                "data": data_name,
                "setting": setting,
                "attack": label,
                **oracle_cells(attack),
                **blank,
                "α→realized FPR": "— (audit only)",
                "break-even π": "—",
                "exposed (m/nm)": "—"
                if "pooled" in label
                else f"{result.exposure_prior.count}/{result.false_exposure_prior.count}",
                "test util": utility,
            }
        )
    for attack in evaluation.worst_case.attacks:
        points = [p for p in realistic.points if p.attack == attack.attack]
        resolvable = [p for p in points if p.resolvable]
        cells = {
            f"PPV π={pi:g}": f"{max((ppv(tpr=p.tpr, fpr=p.fpr, prior=pi) for p in resolvable), default=0.0):.4f}"
            for pi in PRIORS
        }
        fprs = " ".join(f"{p.target_fpr:g}→{p.fpr:.4f}" + ("" if p.resolvable else "(u)") for p in points)
        rows.append(
            {
                "data": data_name,
                "setting": setting,
                "attack": attack.attack,
                **oracle_cells(attack),
                **cells,
                "α→realized FPR": fprs,
                "break-even π": f"{min((p.break_even_prior for p in resolvable), default=1.0):.4g}",
                "exposed (m/nm)": f"{per_attack[attack.attack]}/{false_per_attack.get(attack.attack, 0)}"
                if attack.attack in per_attack
                else "—",
                "test util": utility,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shadow-models", type=int, default=8)
    parser.add_argument("--only", choices=["adult", "mnist"])
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is missing (the shared data sets live next to the repository)", file=sys.stderr)
        return 0
    started = time.perf_counter()
    settings = [("no defense", DefenseConfig()), ("DP ε=1 (C=1)", STRONG_DP)]
    data_sets = [("adult", adult_context), ("mnist5k", mnist_context)]
    rows, summaries = [], []
    for name, make_context in data_sets:
        if args.only and not name.startswith(args.only):
            continue
        context = make_context()
        sizes = context.roles.sizes()
        for setting, defense in settings:
            print(f"[{time.perf_counter() - started:5.0f}s] {name}: {setting} ...", file=sys.stderr, flush=True)
            result = run_audit(context, defense, shadow_models=args.shadow_models, source="benchmark")
            rows += rows_for(name, setting, result)
            ev = result.evaluation
            eps = f", ε = {ev.epsilon:.3g} (δ = {ev.delta:.2g})" if ev.epsilon is not None else ""
            summaries.append(
                f"{name} / {setting}{eps}: members {sizes['members']}, evaluation non-members {sizes['nonmembers']}; "
                f"realistic risk (max PPV at π={result.prior:g}) {ev.realistic.risk:.4f} "
                f"[{ev.realistic.interval[0]:.4f}, {ev.realistic.interval[1]:.4f}] → "
                f"{'adequate' if ev.realistic.adequate else 'NOT adequate'}; worst case (LiRA online PPV at ½) "
                f"{result.online.ppv_at_half:.3f} → {'adequate' if result.online.ppv_at_half <= result.max_ppv else 'NOT adequate'}"
                f" (bound {result.max_ppv:g}); {result.seconds:.0f} s"
            )
    print(render_table(rows, markdown=False), end="")
    print()
    print("\n".join(summaries))
    print(
        "\nPPV at each π: the attacker's best resolvable α (n_nonmembers·α ≥ 10); (u) marks an α the evaluation "
        "cannot resolve; * an oracle TPR read below 1/n_nonmembers (not even one false positive expected). "
        "exposed (m/nm): members / evaluation non-members whose posterior at π=0.01 exceeds 0.5 under that "
        "attack's likelihood ratio (the non-members' count is the attack's false alarms; lira_offline: the "
        "Sellke–Bayarri–Berger bound on an empirical p-value over the attacker's population)."
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
