"""The worst-case audit of one defense, next to the realistic figures of the same model.

What a conventional membership-inference audit reports (Carlini et al.,
"Membership Inference Attacks From First Principles", S&P 2022): the
auditor knows who the members are, trains many shadow models IN and OUT of
every candidate, runs LiRA online, and reads the ROC curve with oracle
thresholds at prior ½. privtune shows that view beside its realistic one,
on the *same* trained target, so the gap between them is visible.

Set-up (the standard LiRA-online one):

* candidates: the members ∪ the evaluation non-members;
* ``audit.shadow_models`` (S, even) shadow models, each trained with the
  target's recipe and defense on a random subset of the candidates chosen
  so that every candidate is IN for exactly S/2 of them (the authors'
  released code: a uniform matrix, arg-sorted per record);
* the target is scored by LiRA online against all S shadows; for more
  resolution at low FPR, each shadow is also scored as a target against the
  other S − 1 (leave-one-out, keeping S/2 − 1 IN and S/2 − 1 OUT shadows
  per record so that the held-out model's own membership does not tilt the
  fit; see :func:`objectives.attacks._lira_online.lira_online_log_lr`), and
  the pooled figures count every (model, candidate) pair once, with the
  model's own IN/OUT as truth;
* oracle figures: AUC (with a 95 % interval), TPR at 0.1 % and 1 % FPR,
  the balanced advantage max(TPR − FPR), the PPV at prior ½ over the
  calibration FPRs; and LiRA's per-member posterior (its likelihood ratio)
  at prior ½ and at the configured π.

The realistic column is :func:`tuner.trial.evaluate_defense` of the same
target: the configured attacks, attacker-calibrated thresholds, prior π.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from defenses import DefenseConfig, predict_logits
from objectives import (
    Exposure,
    Observations,
    WorstCaseAttack,
    dp_tpr_bound,
    exposed_members,
    is_resolvable,
    make_attack,
    oracle_attack,
)
from objectives.attacks._lira_online import balanced_masks, lira_online_log_lr
from objectives.signals import logit_scaled_confidence
from tuner.trial import Evaluation, TrialContext, evaluate_defense, train_shadow, trial_seed

ORACLE_FPRS = (0.001, 0.01)
_SEED_SALT = 0xA0D17


@dataclass
class AuditResult:
    """Both views of one trained target."""

    defense: DefenseConfig
    source: str
    shadow_models: int
    seconds: float
    evaluation: Evaluation                 # realistic figures (and the oracle figures of its attacks)
    online: WorstCaseAttack                # LiRA online against the target
    online_pooled: WorstCaseAttack         # target + leave-one-out shadows, pooled
    exposure_half: Exposure                # members with LiRA posterior > max_ppv at prior ½
    exposure_prior: Exposure               # ... at the configured π
    false_exposure_half: Exposure          # evaluation non-members above the same bound at prior ½
    false_exposure_prior: Exposure         # ... at π
    max_ppv: float
    prior: float


def shadow_membership(n_records: int, shadow_models: int, *, seed: int) -> np.ndarray:
    """``(S, n)`` bool: every record IN for exactly S/2 shadow models, at random.

    Example:
        >>> m = shadow_membership(5, 4, seed=0)
        >>> m.shape, m.sum(axis=0).tolist()
        ((4, 5), [2, 2, 2, 2, 2])
    """
    if shadow_models < 2 or shadow_models % 2:
        raise ValueError(f"shadow_models must be an even integer >= 2, but got {shadow_models!r}")
    rng = np.random.default_rng([seed, _SEED_SALT])
    order = rng.uniform(size=(shadow_models, n_records)).argsort(axis=0)
    return order < shadow_models // 2


def run_audit(
    context: TrialContext,
    defense: DefenseConfig,
    *,
    shadow_models: int,
    trial_number: int = 0,
    source: str = "",
) -> AuditResult:
    """Train the target and S shadow models with ``defense``; measure both views.

    Args:
        context: the study's trial context (config, roles, attacks, device).
        defense: the defense to audit.
        shadow_models: S, even, ≥ 4 (leave-one-out needs an IN and an OUT
            shadow for every record among the other S − 1).
        trial_number: seeds the target as that trial of the study did (0 =
            the baseline), so the realistic figures match the study's.
        source: where the defense came from, for the printout.
    """
    if shadow_models < 4 or shadow_models % 2:
        raise ValueError(f"shadow_models must be an even integer >= 4, but got {shadow_models!r}")
    started = time.perf_counter()
    config, roles, device = context.config, context.roles, context.device
    study_seed = config.study.seed
    evaluation = evaluate_defense(context, defense, seed=trial_seed(study_seed, trial_number))
    assert evaluation.target is not None
    X = np.concatenate([roles.members.X, roles.nonmembers.X])
    y = np.concatenate([roles.members.y, roles.nonmembers.y])
    n_members = len(roles.members)
    membership = shadow_membership(len(y), shadow_models, seed=study_seed)
    shadow_logits = np.stack(
        [
            predict_logits(
                train_shadow(
                    context,
                    defense,
                    (X[membership[s]], y[membership[s]]),
                    seed=int(np.random.SeedSequence([study_seed, _SEED_SALT, s]).generate_state(1)[0]),
                ).model,
                X,
                device=device,
            )
            for s in range(shadow_models)
        ]
    )
    target_logits = predict_logits(evaluation.target.model, X, device=device)
    attack = make_attack("lira_online")
    records = Observations(
        labels=y, target_logits=target_logits, reference_logits=shadow_logits, reference_membership=membership
    )
    target_scores = attack.score(records)
    in_target = np.arange(len(y)) < n_members
    pooled_members, pooled_nonmembers = [target_scores[in_target]], [target_scores[~in_target]]
    phi_shadows = logit_scaled_confidence(shadow_logits, y)  # (S, n)
    for s in range(shadow_models):
        others = np.arange(shadow_models) != s
        in_mask, out_mask = balanced_masks(membership[others])  # S/2 − 1 of each, see lira_online_log_lr
        scores = lira_online_log_lr(
            phi_target=phi_shadows[s], phi_refs=phi_shadows[others], in_mask=in_mask, out_mask=out_mask
        )
        pooled_members.append(scores[membership[s]])
        pooled_nonmembers.append(scores[~membership[s]])
    threat = config.threat_model

    def oracle(members: np.ndarray, nonmembers: np.ndarray) -> WorstCaseAttack:
        resolvable = [
            a
            for a in threat.calibration_fprs
            if is_resolvable(
                n_nonmembers=nonmembers.size,
                alpha=a,
                min_expected_false_positives=threat.min_expected_false_positives,
            )
        ] or [max(threat.calibration_fprs)]
        return oracle_attack(
            "lira_online", members=members, nonmembers=nonmembers, fprs=ORACLE_FPRS, resolvable_fprs=resolvable
        )

    member_log_lr = {"lira_online": target_scores[in_target]}
    nonmember_log_lr = {"lira_online": target_scores[~in_target]}
    max_ppv = config.adequacy.max_ppv
    return AuditResult(
        defense=defense,
        source=source,
        shadow_models=shadow_models,
        seconds=time.perf_counter() - started,
        evaluation=evaluation,
        online=oracle(target_scores[in_target], target_scores[~in_target]),
        online_pooled=oracle(np.concatenate(pooled_members), np.concatenate(pooled_nonmembers)),
        exposure_half=exposed_members(member_log_lr, rows=roles.members.rows, prior=0.5, max_ppv=max_ppv),
        exposure_prior=exposed_members(
            member_log_lr, rows=roles.members.rows, prior=threat.membership_prior, max_ppv=max_ppv
        ),
        false_exposure_half=exposed_members(
            nonmember_log_lr, rows=roles.nonmembers.rows, prior=0.5, max_ppv=max_ppv
        ),
        false_exposure_prior=exposed_members(
            nonmember_log_lr, rows=roles.nonmembers.rows, prior=threat.membership_prior, max_ppv=max_ppv
        ),
        max_ppv=max_ppv,
        prior=threat.membership_prior,
    )


def audit_rows(result: AuditResult) -> list[dict[str, str]]:
    """One row per attack: worst-case (oracle, prior ½) columns, then realistic (calibrated, π) columns."""
    evaluation = result.evaluation
    realistic = evaluation.realistic
    rows = []

    def worst(attack: WorstCaseAttack) -> dict[str, str]:
        low, high = attack.auc_interval
        return {
            "AUC [95%]": f"{attack.auc:.3f} [{low:.3f}, {high:.3f}]",
            "TPR@0.1%": _tpr_cell(attack, 0.001),
            "TPR@1%": _tpr_cell(attack, 0.01),
            "adv": f"{attack.advantage:.3f}",
            "PPV@½": f"{attack.ppv_at_half:.3f}",
            "|": "|",
        }

    blank = {"α→FPR": "—", "TPR": "—", f"PPV@π={result.prior:g} [95%]": "—", "break-even π": "—"}
    for label, attack in (
        (f"lira_online (target, {result.shadow_models} shadows)", result.online),
        (f"lira_online (pooled ×{result.shadow_models + 1} models)", result.online_pooled),
    ):
        rows.append({"attack": label, **worst(attack), **blank})
    for attack in evaluation.worst_case.attacks:
        points = [p for p in realistic.points if p.attack == attack.attack and p.resolvable]
        best = max(points, key=lambda p: p.ppv, default=None)
        realistic_cells = dict(blank)
        if best is not None:
            realistic_cells = {
                "α→FPR": f"{best.target_fpr:g}→{best.fpr:.4f}",
                "TPR": f"{best.tpr:.4f}",
                f"PPV@π={result.prior:g} [95%]": f"{best.ppv:.4f} [{best.ppv_interval[0]:.4f}, {best.ppv_interval[1]:.4f}]",
                "break-even π": f"{best.break_even_prior:.4g}",
            }
        rows.append({"attack": attack.attack, **worst(attack), **realistic_cells})
    return rows


def audit_text(result: AuditResult, *, render_table) -> str:  # noqa: ANN001 - tuner.report.render_table
    """The printout of ``privtune audit``: a header, the side-by-side table and the verdicts."""
    evaluation = result.evaluation
    realistic = evaluation.realistic
    bound = result.max_ppv
    worst_ppv = max(result.online.ppv_at_half, evaluation.worst_case.risk)
    lines = [
        f"privtune audit: {result.defense.describe()}{f' ({result.source})' if result.source else ''}",
        f"  target: {result.online.n_members} members; LiRA online with {result.shadow_models} shadow models, each "
        f"record IN for {result.shadow_models // 2}; {result.seconds:.0f} s",
        "",
        "WORST CASE (auditor knows the members: oracle thresholds, prior ½)  |  REALISTIC (attacker-calibrated "
        f"thresholds, prior π = {result.prior:g}, best resolvable α per attack)",
        "",
    ]
    table = render_table(audit_rows(result), markdown=False)
    lines.append(table.rstrip("\n"))
    lines.append("")
    w_verdict = "adequate" if worst_ppv <= bound else "NOT adequate"
    r_verdict = "adequate" if realistic.adequate else "NOT adequate"
    lines.append(
        f"worst-case view: PPV at prior ½ {worst_ppv:.3f} (bound {bound:g}) → {w_verdict}; "
        f"LiRA-online AUC {result.online.auc:.3f}, TPR@0.1% FPR {result.online.tpr_at_fpr[0.001]:.3f} "
        f"(pooled {result.online_pooled.tpr_at_fpr[0.001]:.3f} over {result.online_pooled.n_nonmembers} non-member pairs)"
    )
    lines.append(
        f"realistic view:  PPV {realistic.risk:.4f} [{realistic.interval[0]:.4f}, {realistic.interval[1]:.4f}] at "
        f"π = {result.prior:g} (95% upper bound {realistic.upper_bound:.4f}; bound {bound:g}) → {r_verdict}; "
        f"break-even prior π* = {realistic.break_even_prior:.4g}"
    )
    exposure = evaluation.exposure
    realistic_exposed = (
        "not assessed (no configured attack has a likelihood ratio)"
        if exposure is None or not exposure.assessed
        else f"{exposure.count} ({', '.join(exposure.attacks)})"
    )
    lines.append(
        f"members with posterior > {bound:g}: LiRA online at prior ½: {result.exposure_half.count} of "
        f"{result.exposure_half.n_members} (and {result.false_exposure_half.count} of "
        f"{result.false_exposure_half.n_members} non-members), at π = {result.prior:g}: "
        f"{result.exposure_prior.count} (and {result.false_exposure_prior.count} non-members); "
        f"realistic attacks at π: {realistic_exposed}"
    )
    if result.exposure_prior.count:
        lines.append(f"  exposed at π (row ids): {_rows(result.exposure_prior)}")
    if exposure is not None and exposure.count:
        lines.append(f"  exposed by the realistic attacks (row ids): {_rows(exposure)}")
    if evaluation.dp_bounds is not None:
        b = evaluation.dp_bounds
        caps = ", ".join(
            f"TPR@{f:g} ≤ {dp_tpr_bound(epsilon=b.epsilon, delta=b.delta, fpr=f):.4f} (measured "
            f"{result.online.tpr_at_fpr[f]:.4f})"
            for f in ORACLE_FPRS
        )
        lines.append(f"DP (ε = {b.epsilon:.3g}, δ = {b.delta:.3g}): {caps}")
    lines.append(
        f"utility: test {evaluation.utility_test:.4f} [{evaluation.utility_test_interval[0]:.4f}, "
        f"{evaluation.utility_test_interval[1]:.4f}]"
    )
    if any(_unresolved(a, f) for a in (result.online, result.online_pooled) for f in ORACLE_FPRS):
        lines.append(
            "* fewer non-members than 1/FPR: not even one false positive is expected there, so the oracle TPR "
            "is read at the lowest FPR the data can show (the top of the ROC curve's first rise)"
        )
    if realistic.warning:
        lines.append(f"warning: {realistic.warning}")
    return "\n".join(lines) + "\n"


def _unresolved(attack: WorstCaseAttack, fpr: float) -> bool:
    return attack.n_nonmembers * fpr < 1.0


def _tpr_cell(attack: WorstCaseAttack, fpr: float) -> str:
    return f"{attack.tpr_at_fpr[fpr]:.3f}" + ("*" if _unresolved(attack, fpr) else "")


def _rows(exposure: Exposure, limit: int = 20) -> str:
    shown = ", ".join(f"{r.row} ({r.posterior:.2f})" for r in exposure.records[:limit])
    return shown + (f" … and {exposure.count - limit} more" if exposure.count > limit else "")
