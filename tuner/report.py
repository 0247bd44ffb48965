"""Human-readable outputs: the frontier table, ``trials.csv`` and ``report.md``."""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Mapping, Sequence

import optuna

from defenses import DefenseConfig
from objectives import ppv
from tuner.privacy_cost import which_epsilon_lines
from tuner.records import TrialRecord, trial_attrs
from tuner.run_folder import RunFolder, write_atomic
from tuner.search_budget import describe_budget
from tuner.selection import pareto_front, tie_margin
from tuner.tune import Prepared, Recommendation

PRIOR_GRID = (0.5, 0.1, 0.01, 0.001)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _interval(pair: Sequence[float]) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def frontier_rows(records: Sequence[TrialRecord], chosen: TrialRecord | None) -> list[dict[str, str]]:
    """One row per completed trial, ordered by realistic risk; ``*`` marks the frontier."""
    front = {r.number for r in pareto_front(records)}
    rows = []
    for r in sorted(records, key=lambda r: (r.risk, -r.utility_validation)):
        mark = ("→" if chosen is not None and r.number == chosen.number else "") + ("*" if r.number in front else "")
        rows.append(
            {
                "": mark,
                "trial": str(r.number),
                "defense": r.defense.describe(),
                "val util": _fmt(r.utility_validation),
                "test util": _fmt(r.utility_test),
                "PPV (realistic)": f"{r.risk:.3f} {_interval(r.risk_interval)}",
                "adequate": ("yes" if r.adequate_in("realistic") else "no") + (" ?" if r.uncertain else ""),
                "exposed": "—" if r.exposed is None else str(r.exposed),
                "break-even π": _fmt(r.break_even_prior, 4),
                "AUC (worst)": _fmt(r.worst_case_auc),
                "PPV@0.5 (worst)": _fmt(r.worst_case_risk),
                "ε": _fmt(r.epsilon, 2),
            }
        )
    return rows


def render_table(rows: Sequence[dict[str, str]], *, markdown: bool) -> str:
    """A fixed-width (terminal) or Markdown table of ``rows``."""
    if not rows:
        return "(no completed trials)\n"
    headers = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in headers]
    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells, widths)]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded).rstrip()
    out = [line(headers)]
    out.append(line(["-" * w for w in widths]) if markdown else "  ".join("-" * w for w in widths))
    out += [line([row[h] for h in headers]) for row in rows]
    return "\n".join(out) + "\n"


def _why_not_the_baseline(outcome: Recommendation) -> list[str]:
    """When the adequate baseline lost, say by how much (the tie rule of the selection)."""
    base, chosen = outcome.baseline, outcome.chosen
    if base is None or chosen is None or chosen.number == base.number or not base.adequate:
        return []
    best = max((r for r in outcome.records if r.adequate), key=lambda r: r.utility_validation)
    floor = best.utility_validation - tie_margin(best)
    return [
        f"  why not the undefended baseline (#{base.number}, adequate too): its validation utility "
        f"{base.utility_validation:.4f} is below the tie floor {floor:.4f} (best adequate #{best.number} "
        f"{best.utility_validation:.4f} minus its interval half-width {tie_margin(best):.4f}); within that "
        f"floor the lesser intervention, #{chosen.number}, wins."
    ]


def summary_lines(prepared: Prepared, outcome: Recommendation) -> list[str]:
    """The recommendation in a few lines (printed at the end of `tune`)."""
    config = prepared.config
    prior = config.threat_model.membership_prior
    bound = config.adequacy.max_ppv
    metric = config.objective.utility
    lines = []
    chosen, confirmation = outcome.chosen, outcome.confirmation
    if chosen is None or confirmation is None:
        lines.append(f"NO ADEQUATE DEFENSE: no trial kept the realistic PPV at π={prior:g} at or below {bound:g}.")
        if outcome.budget is not None and not outcome.records:
            lines.append(
                f"The random search budget drew K = {outcome.budget['runs']} runs: nothing was trained (the "
                "distribution allows it; it is part of what keeps the search's ε small)."
            )
        if outcome.least_risky is not None:
            r = outcome.least_risky
            lines.append(
                f"Least risky trial: #{r.number} ({r.defense.describe()}): PPV {r.risk:.3f} "
                f"{_interval(r.risk_interval)}, test {metric} {r.utility_test:.3f}."
            )
        lines.append("Widen the search space (stronger DP, more trials) or revisit the threat model.")
        return lines
    realistic = confirmation.realistic
    head = "NO DEFENSE NEEDED" if outcome.no_defense_needed else "RECOMMENDED DEFENSE"
    lines.append(f"{head}: {chosen.defense.describe()}  (trial #{chosen.number})")
    lines.append(
        f"  test {metric}: {confirmation.utility_test:.4f} {_interval(confirmation.utility_test_interval)} "
        f"(mean of {len(confirmation.seeds)} retrains with fresh seeds; 95% prediction interval for a new run)"
    )
    lines.append(
        f"  realistic risk: PPV {realistic['risk']:.4f} {_interval(realistic['interval'])} at π={prior:g} "
        f"(bound {bound:g}{', uncertain' if realistic['uncertain'] else ''}); "
        f"break-even prior π* = {realistic['break_even_prior']:.4g}"
    )
    worst = confirmation.worst_case
    lines.append(f"  worst-case view: AUC {worst['auc']:.4f}, PPV at π=0.5 with oracle thresholds {worst['risk']:.4f}")
    lines.append("  " + exposure_line(confirmation.exposure, max_exposed=config.adequacy.max_exposed))
    if confirmation.epsilon is not None:
        lines.append(f"  DP: ε = {confirmation.epsilon:.3g} per training run (δ = {chosen.delta:.3g})")
        cost = outcome.privacy_cost
        if cost is not None:
            if math.isinf(cost.search_epsilon):
                search = "∞ (a trial trained on the members without DP)"
            else:
                search = (
                    f"{cost.search_and_confirmation_epsilon:.3g} (search {cost.search_epsilon:.3g}, "
                    f"{cost.search_basis.replace('_', '-')}, plus {cost.confirmation_runs} confirmation retrain(s))"
                )
            lines.append(
                f"  DP: ε of the tuning procedure = {search}; see the report's \"which ε holds for what\""
            )
    lines += _why_not_the_baseline(outcome)
    wc = outcome.worst_case_choice
    if wc is None:
        lines.append("  worst-case tuning would have found no adequate defense in this space.")
    else:
        cost = chosen.utility_test - wc.utility_test
        lines.append(
            f"  worst-case tuning would have chosen #{wc.number} ({wc.defense.describe()}), "
            f"test {metric} {wc.utility_test:.4f} ({cost:+.4f} given up)"
        )
    return lines


def exposure_line(exposure: dict[str, Any] | None, *, max_exposed: int | None) -> str:
    """Exposed members of a confirmation (pooled over its retrains), in one line."""
    bound = "" if max_exposed is None else f" (bound {max_exposed} per retrain)"
    if exposure is None or not exposure["attacks"]:
        return "exposed members: not assessed (no configured attack has a likelihood ratio: add rmia or lira_offline)"
    members = exposure["members"]
    head = (
        f"exposed members (posterior > {exposure['max_ppv']:g} at π={exposure['prior']:g} under "
        f"{', '.join(exposure['attacks'])}): at most {exposure['max_count']} per retrain, {len(members)} in any of "
        f"{exposure['retrains']}{bound}"
    )
    false_alarms = exposure.get("false_alarms_per_retrain") or []
    if false_alarms:
        head += (
            f"; evaluation non-members above the same bound (false alarms): at most {max(false_alarms)} of "
            f"{exposure['n_nonmembers']}"
        )
    if not members:
        return head
    shown = ", ".join(f"{m['row']}" for m in members[:10])
    return head + f"; rows {shown}" + (f" … (+{len(members) - 10})" if len(members) > 10 else "")


def exposure_rows(exposure: dict[str, Any] | None) -> list[dict[str, str]]:
    """The exposed members of a confirmation, one row each."""
    if exposure is None:
        return []
    return [
        {
            "row id": str(m["row"]),
            "posterior (largest)": f"{m['posterior']:.4f}",
            "attack": m["attack"],
            "exposed in retrains": f"{m['retrains']} of {exposure['retrains']}",
        }
        for m in exposure["members"]
    ]


def dp_bound_rows(bounds: dict[str, Any] | None) -> list[dict[str, str]]:
    """The (ε, δ) limits beside the measured figures: realistic points, then the oracle's."""
    if bounds is None:
        return []
    rows = []
    for view, prior in (("realistic", bounds["prior"]), ("oracle", 0.5)):
        for b in bounds[view]:
            rows.append(
                {
                    "view": f"{view} (π={prior:g})",
                    "attack": b["attack"],
                    "α → realized FPR": f"{b['target_fpr']:g} → {b['fpr']:.4f}",
                    "TPR measured": f"{b['tpr']:.4f}",
                    "TPR ≤ e^ε·FPR + δ": f"{b['tpr_bound']:.4f}",
                    "PPV measured": f"{b['ppv']:.4f}",
                    "PPV bound": f"{b['ppv_bound']:.4f}",
                    "within": "yes" if b["within"] else "NO",
                }
            )
    return rows


def prior_rows(
    baseline: dict[str, Any] | None, recommended: dict[str, Any] | None, priors: Sequence[float]
) -> list[dict[str, str]]:
    """PPV over a grid of priors for the baseline (its trial) and the recommendation (pooled retrains)."""
    base = dict(ppv_over_priors(baseline, priors)) if baseline is not None else {}
    rec = dict(ppv_over_priors(recommended, priors)) if recommended is not None else {}
    return [
        {
            "π": f"{pi:g}",
            "PPV baseline": _fmt(base.get(pi), 4),
            "PPV recommendation": _fmt(rec.get(pi), 4),
        }
        for pi in priors
    ]


def ppv_over_priors(realistic: dict[str, Any], priors: Sequence[float] = PRIOR_GRID) -> list[tuple[float, float]]:
    """Risk as a function of the prior: max PPV over the resolvable operating points."""
    points = [p for p in realistic["points"] if p["resolvable"]]
    return [(pi, max((ppv(tpr=p["tpr"], fpr=p["fpr"], prior=pi) for p in points), default=0.0)) for pi in priors]


def calibration_rows(realistic: dict[str, Any]) -> list[dict[str, str]]:
    """Calibration fidelity: the realized FPR next to the α the attacker aimed for."""
    return [
        {
            "attack": p["attack"],
            "target α": f"{p['target_fpr']:g}",
            "realized FPR": f"{p['fpr']:.4f} {_interval(p['fpr_interval'])}",
            "TPR": f"{p['tpr']:.4f}",
            "PPV": f"{p['ppv']:.4f} {_interval(p['ppv_interval'])}",
            "resolvable": "yes" if p["resolvable"] else "no",
        }
        for p in realistic["points"]
    ]


def report_markdown(
    prepared: Prepared,
    outcome: Recommendation,
    *,
    study_name: str,
    figures: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole ``report.md``; ``figures`` are (title, relative PNG path) pairs to embed."""
    config, roles = prepared.config, prepared.roles
    threat = config.threat_model
    parts = [f"# privtune report: study `{study_name}`\n\n"]
    parts.append(
        f"Data: `{prepared.data_name}` ({roles.n_classes} classes, {roles.n_features} features); roles: "
        + ", ".join(f"{k} {v}" for k, v in roles.sizes().items())
        + ".\n\n"
    )
    parts.append(
        f"Threat model: membership prior π = {threat.membership_prior:g}, K = {threat.reference_models} "
        f"reference models, attacks {', '.join(threat.attacks)}, access `{threat.access}`, calibration FPRs "
        f"{', '.join(f'{a:g}' for a in threat.calibration_fprs)}. Adequate ⇔ PPV ≤ {config.adequacy.max_ppv:g} "
        f"(risk view: {config.objective.risk})"
        + (
            ""
            if config.adequacy.max_exposed is None
            else f" and at most {config.adequacy.max_exposed} exposed member(s)"
        )
        + f". Search: {describe_budget(outcome.budget)}.\n\n"
    )
    for warning in prepared.warnings:
        parts.append(f"> **Warning:** {warning}.\n\n")
    parts.append("## Recommendation\n\n```\n")
    parts.append("\n".join(summary_lines(prepared, outcome)) + "\n```\n")
    if outcome.confirmation is not None:
        realistic = outcome.confirmation.realistic
        parts.append("\n### Calibration fidelity (pooled confirmation retrains)\n\n")
        parts.append(render_table(calibration_rows(realistic), markdown=True))
        if realistic["unresolvable_fprs"]:
            needed = ", ".join(f"α={a} needs {n}" for a, n in realistic["nonmembers_needed"].items())
            parts.append(
                f"\nToo small for the data (fewer than {threat.min_expected_false_positives:g} expected false "
                f"positives): {needed} evaluation non-members.\n"
            )
        parts.append("\n### Exposed members\n\n")
        parts.append(
            exposure_line(outcome.confirmation.exposure, max_exposed=config.adequacy.max_exposed)
            + ". A member is exposed when an attack's likelihood ratio Λ puts its posterior π·Λ/(π·Λ + 1 − π) "
            "above the adequacy bound: the attacker's claim about that one person is more likely right than the "
            "bound allows. Row ids index the loaded data set.\n\n"
        )
        rows = exposure_rows(outcome.confirmation.exposure)
        if rows:
            parts.append(render_table(rows, markdown=True))
        if outcome.confirmation.dp_bounds is not None:
            bounds = outcome.confirmation.dp_bounds
            parts.append(
                f"\n### DP bounds (ε = {bounds['epsilon']:.3g}, δ = {bounds['delta']:.3g}) beside the measured "
                "figures\n\nAny test against an (ε, δ)-DP run has TPR ≤ e^ε·FPR + δ at every FPR, hence the PPV bound "
                "at the same prior; realistic rows use each point's realized FPR.\n\n"
            )
            parts.append(render_table(dp_bound_rows(bounds), markdown=True))
    priors = sorted({*PRIOR_GRID, threat.membership_prior}, reverse=True)
    baseline = outcome.baseline
    recommended = outcome.confirmation.realistic if outcome.confirmation is not None else None
    if baseline is not None or recommended is not None:
        parts.append(
            "\n### Risk over the membership prior\n\nThe largest PPV over attacks and resolvable calibration FPRs at "
            "each prior; the baseline from its trial, the recommendation from its pooled retrains.\n\n"
        )
        parts.append(
            render_table(prior_rows(None if baseline is None else baseline.realistic, recommended, priors), markdown=True)
        )
    parts.append("\n## Which ε holds for what\n\n")
    dp_recommended = outcome.chosen is not None and outcome.chosen.defense.dp is not None
    parts.append(
        "\n\n".join(which_epsilon_lines(outcome.privacy_cost, dp_recommended=dp_recommended)) + "\n"
    )
    for candidate, verdict in outcome.rejected:
        parts.append(
            f"\nTrial #{candidate.number} ({candidate.defense.describe()}) was adequate in the search but not on "
            f"its confirmation retrains (pooled PPV {verdict.realistic['risk']:.4f}); it was passed over.\n"
        )
    if figures:
        parts.append("\n## Figures\n\n")
        parts.append("".join(f"### {title}\n\n![{title}]({path})\n\n" for title, path in figures))
    parts.append("\n## Frontier\n\n")
    parts.append(
        "All completed trials by realistic risk; `*` marks the utility–risk frontier, `→` the recommendation, "
        "`?` an interval that straddles the bound.\n\n"
    )
    parts.append(render_table(frontier_rows(outcome.records, outcome.chosen), markdown=True))
    return "".join(parts)


def trials_csv(study: optuna.Study) -> str:
    """Every trial of the study, one row each, with its figures."""
    columns = [
        "number", "state", "baseline", "defense", "utility_validation", "utility_test", "realistic_ppv",
        "realistic_ppv_low", "realistic_ppv_high", "realistic_advantage", "break_even_prior", "adequate",
        "uncertain", "worst_case_auc", "worst_case_tpr_at_0.001", "worst_case_tpr_at_0.01",
        "worst_case_ppv_at_0.5", "epsilon", "delta", "epochs_run", "seconds", "realistic_ppv_upper95",
        "exposed", "exposed_rows",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        a = trial_attrs(t)
        real, worst = a.get("realistic", {}), a.get("worst_case", {})
        tpr = worst.get("tpr_at_fpr", {})
        writer.writerow(
            {
                "number": t.number,
                "state": t.state.name,
                "baseline": bool(a.get("baseline", False)),
                "defense": DefenseConfig.from_dict(a["defense"]).describe() if "defense" in a else "",
                "utility_validation": a.get("utility_validation", ""),
                "utility_test": a.get("utility_test", ""),
                "realistic_ppv": real.get("risk", ""),
                "realistic_ppv_low": real.get("interval", ["", ""])[0],
                "realistic_ppv_high": real.get("interval", ["", ""])[1],
                "realistic_ppv_upper95": real.get("upper_bound", ""),
                "exposed": (a.get("exposure") or {}).get("count", ""),
                "exposed_rows": " ".join(str(r) for r in (a.get("exposure") or {}).get("rows", [])),
                "realistic_advantage": real.get("advantage", ""),
                "break_even_prior": real.get("break_even_prior", ""),
                "adequate": real.get("adequate", ""),
                "uncertain": real.get("uncertain", ""),
                "worst_case_auc": worst.get("auc", ""),
                "worst_case_tpr_at_0.001": tpr.get("0.001", tpr.get(0.001, "")),
                "worst_case_tpr_at_0.01": tpr.get("0.01", tpr.get(0.01, "")),
                "worst_case_ppv_at_0.5": worst.get("risk", ""),
                "epsilon": a.get("epsilon", ""),
                "delta": a.get("delta", ""),
                "epochs_run": a.get("epochs_run", ""),
                "seconds": a.get("seconds", ""),
            }
        )
    return buffer.getvalue()


def write_reports(
    folder: RunFolder,
    study: optuna.Study,
    prepared: Prepared,
    outcome: Recommendation,
    pngs: Mapping[str, bytes] | None = None,
) -> None:
    """Write ``trials.csv``, the figures (``figures/*.png``) and ``report.md`` atomically.

    ``pngs``: the outcome's figures already rendered (the same ones TensorBoard logged).
    """
    from tuner.figures import figure_data, write_figures

    write_atomic(folder.trials_csv, trials_csv(study))
    written = write_figures(folder.figures, figure_data(study, prepared.config, outcome), pngs)
    figures = [(title, path.relative_to(folder.root).as_posix()) for title, path in written]
    write_atomic(folder.report, report_markdown(prepared, outcome, study_name=study.study_name, figures=figures))
