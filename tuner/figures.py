"""Study-level figures: the trade-off frontier, ROC curves, PPV against the prior.

The same figures go to TensorBoard (refreshed as trials finish, see
:mod:`tuner.tensorboard`) and, as PNG files, next to ``report.md``. They are
drawn from the study storage alone, so ``privtune report RUN`` re-renders
them without the training run:

* each trial's figures are its user attributes (:mod:`tuner.records`), plus a
  compact ROC curve per attack (:data:`ROC_ATTR`, written by the trial loop
  from the in-memory scores of that trial's target model, see
  :func:`roc_summary`);
* the recommendation's pooled risk is the confirmation cached in the study.

The ROC figure shows the ROC of the baseline's and the recommended trial's
own target model (the search-time evaluation; the confirmation retrains
keep only their pooled operating points, which the PPV figure uses).

Figures are plain :class:`matplotlib.figure.Figure` objects drawn with the
Agg canvas (no pyplot, no display, no global state), rendered to PNG bytes
by :func:`render_png`.

Example:
    >>> import numpy as np
    >>> from objectives import AttackScores
    >>> scores = {"loss": AttackScores(members=np.array([3.0, 2.0, 0.5]),
    ...                                nonmembers=np.array([1.0, 0.0]),
    ...                                calibration=np.array([0.0]))}
    >>> roc = roc_summary(scores)["attacks"]["loss"]
    >>> roc["fpr"], [round(t, 4) for t in roc["tpr"]]
    ([0.0, 0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.3333, 0.6667, 0.6667, 1.0, 1.0])
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from objectives import AttackScores, ppv
from objectives.worst_case import roc_points, tpr_at
from tuner.records import TrialRecord, completed_records, trial_attrs
from tuner.selection import pareto_front, rank_candidates

if TYPE_CHECKING:
    import optuna

    from tuner.config import RunConfig
    from tuner.tune import Recommendation

ROC_ATTR = "roc"  # trial user attribute: compact ROC curves of the trial's target model
ROC_MAX_POINTS = 120
PRIOR_GRID = tuple(float(p) for p in np.logspace(-4, np.log10(0.5), 60))
DPI = 100

_ADEQUATE, _INADEQUATE, _FRONT, _CHOSEN = "#2e7d32", "#c62828", "#1565c0", "#f9a825"


# --- data the figures draw ------------------------------------------------------


def roc_summary(scores: Mapping[str, AttackScores], *, max_points: int = ROC_MAX_POINTS) -> dict[str, Any]:
    """Compact ROC curves of one trained target, one per attack (JSON-ready).

    The vertices of each ROC curve (tied scores grouped into one step, as
    :func:`objectives.worst_case.roc_points` draws them) are kept exactly
    when there are at most ``max_points``; otherwise the curve is sampled at
    0 and at ``max_points - 1`` log-spaced FPRs from the smallest non-zero
    FPR to 1 (the TPR read off the curve as the oracle would, see
    :func:`objectives.worst_case.tpr_at`), which is what a log-log plot needs.
    """
    attacks: dict[str, dict[str, list[float]]] = {}
    n_members = n_nonmembers = 0
    for name, s in scores.items():
        fpr, tpr = roc_points(s.members, s.nonmembers)
        n_members, n_nonmembers = int(s.members.size), int(s.nonmembers.size)
        if fpr.size > max_points:
            smallest = float(fpr[fpr > 0].min())
            grid = np.concatenate([[0.0], np.logspace(np.log10(smallest), 0.0, max_points - 1)])
            grid[-1] = 1.0
            tpr = np.array([tpr_at(fpr=fpr, tpr=tpr, alpha=float(a)) for a in grid])
            fpr = grid
        attacks[name] = {
            "fpr": [round(float(v), 8) for v in fpr],
            "tpr": [round(float(v), 8) for v in tpr],
        }
    return {"n_members": n_members, "n_nonmembers": n_nonmembers, "attacks": attacks}


def ppv_curve(points: Sequence[Mapping[str, Any]], priors: Sequence[float] = PRIOR_GRID) -> list[float]:
    """Realistic risk over the prior: at each π, the max PPV over the resolvable operating points."""
    usable = [p for p in points if p["resolvable"]]
    return [max((ppv(tpr=p["tpr"], fpr=p["fpr"], prior=pi) for p in usable), default=0.0) for pi in priors]


@dataclass(frozen=True)
class FigureData:
    """Everything the study figures draw, read from the study (and the config).

    ``chosen`` is the confirmed recommendation when ``confirmed``, else (while
    trials still run) the current first candidate, unconfirmed.
    ``chosen_realistic`` is the pooled confirmation risk when confirmed, else
    the trial's own.
    """

    records: list[TrialRecord]
    roc: dict[int, dict[str, Any]]
    chosen: TrialRecord | None
    confirmed: bool
    chosen_realistic: dict[str, Any] | None
    worst_case_choice: TrialRecord | None
    max_ppv: float
    prior: float
    utility_name: str
    risk_view: str = "realistic"
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> TrialRecord | None:
        return next((r for r in self.records if r.is_baseline), None)

    @property
    def chosen_label(self) -> str:
        return "recommended" if self.confirmed else "current candidate (unconfirmed)"


def figure_data(study: optuna.Study, config: RunConfig, outcome: Recommendation | None = None) -> FigureData:
    """Read the figures' inputs from ``study``.

    Args:
        study: the study (its completed trials and cached confirmations).
        config: the run's config (the bound, the prior, the risk view).
        outcome: the confirmed recommendation; ``None`` while trials run,
            which marks the current first candidate instead.
    """
    records = completed_records(study)
    roc = {
        t.number: attrs[ROC_ATTR]
        for t in study.get_trials(deepcopy=False)
        if ROC_ATTR in (attrs := trial_attrs(t))
    }
    view = config.objective.risk
    if outcome is not None:
        chosen, confirmed = outcome.chosen, outcome.chosen is not None
        realistic = outcome.confirmation.realistic if outcome.confirmation is not None else None
        worst = outcome.worst_case_choice
    else:
        chosen = next(iter(rank_candidates(records, view=view)), None)
        confirmed, realistic = False, None
        worst = next(iter(rank_candidates(records, view="worst_case")), None)
    if chosen is not None and realistic is None:
        realistic = chosen.realistic
    return FigureData(
        records=records,
        roc=roc,
        chosen=chosen,
        confirmed=confirmed,
        chosen_realistic=realistic,
        worst_case_choice=worst,
        max_ppv=config.adequacy.max_ppv,
        prior=config.threat_model.membership_prior,
        utility_name=config.objective.utility,
        risk_view=view,
    )


# --- the figures ---------------------------------------------------------------


def frontier_figure(data: FigureData) -> Figure:
    """Validation utility against realistic risk (left) and the worst-case view (right).

    Each panel draws every completed trial (green: adequate in that view, red:
    not; triangles: DP), the adequacy bound as a dashed vertical line, the
    non-dominated trials joined by a line, the baseline boxed, the
    recommendation as a star and, on the right, the trial a worst-case-driven
    choice would pick as a diamond.
    """
    fig = Figure(figsize=(12, 4.8), dpi=DPI)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    panels = (
        (left, "realistic", lambda r: r.risk, f"realistic PPV at π = {data.prior:g}, attacker-calibrated (log)"),
        (right, "worst_case", lambda r: r.worst_case_risk, "worst-case PPV at π = 0.5, oracle thresholds (log)"),
    )
    for ax, view, risk_of, xlabel in panels:
        _frontier_panel(ax, data, view, risk_of)
        ax.set_xlabel(xlabel)
        ax.set_title("realistic view" if view == "realistic" else "worst-case view")
    left.set_ylabel(f"validation {data.utility_name}")
    handles, labels = left.get_legend_handles_labels()
    more_h, more_l = right.get_legend_handles_labels()
    for h, label in zip(more_h, more_l):
        if label not in labels:
            handles.append(h)
            labels.append(label)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8, frameon=False)
    fig.suptitle(f"Privacy–utility frontier ({len(data.records)} completed trials)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


def frontier_points(records: Sequence[TrialRecord], view: str) -> list[tuple[float, float]]:
    """The non-dominated trials of a view as (risk, validation utility), by increasing risk."""
    risk_of = (lambda r: r.risk) if view == "realistic" else (lambda r: r.worst_case_risk)
    if view == "realistic":
        front = pareto_front(records)
    else:
        front = [
            r
            for r in records
            if not any(
                o.utility_validation >= r.utility_validation
                and risk_of(o) <= risk_of(r)
                and (o.utility_validation > r.utility_validation or risk_of(o) < risk_of(r))
                for o in records
            )
        ]
    return sorted(((risk_of(r), r.utility_validation) for r in front), key=lambda p: (p[0], p[1]))


def _frontier_panel(ax: Any, data: FigureData, view: str, risk_of: Callable[[TrialRecord], float]) -> None:
    records = data.records
    for is_dp, marker in ((False, "o"), (True, "^")):
        for ok in (True, False):
            group = [r for r in records if (r.defense.dp is not None) == is_dp and r.adequate_in(view) == ok]
            if not group:
                continue
            ax.scatter(
                [risk_of(r) for r in group],
                [r.utility_validation for r in group],
                marker=marker,
                s=36,
                color=_ADEQUATE if ok else _INADEQUATE,
                alpha=0.8,
                label=f"{'DP' if is_dp else 'no DP'}, {'adequate' if ok else 'not adequate'}",
                gid=f"trials-{'dp' if is_dp else 'nodp'}-{'ok' if ok else 'bad'}",
            )
    front = frontier_points(records, view)
    if front:
        xs, ys = zip(*front)
        xs = tuple(max(x, _risk_floor(data)) for x in xs)
        ax.plot(xs, ys, "-", color=_FRONT, lw=1.4, label="non-dominated trials", gid="frontier")
    ax.axvline(data.max_ppv, color="black", ls="--", lw=1, label=f"adequacy bound PPV = {data.max_ppv:g}")
    base = data.baseline
    if base is not None:
        ax.scatter(
            [risk_of(base)], [base.utility_validation], s=140, facecolors="none", edgecolors="black",
            marker="s", label="baseline (no defense)", gid="baseline",
        )
    if data.chosen is not None:
        ax.scatter(
            [risk_of(data.chosen)], [data.chosen.utility_validation], s=260, marker="*", color=_CHOSEN,
            edgecolors="black", zorder=5, label=data.chosen_label, gid="chosen",
        )
    if view == "worst_case" and data.worst_case_choice is not None:
        wc = data.worst_case_choice
        ax.scatter(
            [wc.worst_case_risk], [wc.utility_validation], s=120, marker="D", facecolors="none",
            edgecolors="purple", lw=1.5, zorder=4, label="worst-case-driven choice", gid="worst_case_choice",
        )
    # Log scale: realistic PPVs sit near the prior, far below the bound; 0 (no claims) at the floor.
    for collection in ax.collections:
        offsets = collection.get_offsets()
        if len(offsets):
            offsets[:, 0] = np.maximum(offsets[:, 0], _risk_floor(data))
            collection.set_offsets(offsets)
    ax.set_xscale("log")
    ax.set_xlim(_risk_floor(data), 1.0)
    ax.grid(alpha=0.3, which="both")
    _label_trials(ax, data, view, risk_of)


LABEL_BOX_PX = (24, 11)  # a "#number" label's width and height in the figure's pixels, with a margin


def _label_trials(ax: Any, data: FigureData, view: str, risk_of: Callable[[TrialRecord], float]) -> None:
    """``#number`` beside the trials, leaving out those that would overprint a label already placed.

    The recommendation, the baseline, the worst-case-driven choice and the
    non-dominated trials are labelled first, so a cluster of similar trials
    keeps the labels that matter; the table in ``report.md`` lists every trial.
    """
    records = data.records
    front = set(frontier_points(records, view))
    special = {r.number for r in (data.chosen, data.baseline, data.worst_case_choice) if r is not None}

    def importance(r: TrialRecord) -> tuple[int, int]:
        on_front = (risk_of(r), r.utility_validation) in front
        return (0 if r.number in special else 1 if on_front else 2, r.number)

    ax.get_ylim()  # settles the autoscaled y limits that pixel positions depend on
    placed: list[np.ndarray] = []
    for r in sorted(records, key=importance):
        point = (max(risk_of(r), _risk_floor(data)), r.utility_validation)
        where = ax.transData.transform(point)
        if any(abs(where[0] - x) < LABEL_BOX_PX[0] and abs(where[1] - y) < LABEL_BOX_PX[1] for x, y in placed):
            continue
        placed.append(where)
        big = data.chosen is not None and r.number == data.chosen.number  # clear of the star
        ax.annotate(f"#{r.number}", point, xytext=(9, 6) if big else (4, 3), textcoords="offset points", fontsize=7,
                    color="#444444", gid=f"label-{r.number}")


def _risk_floor(data: FigureData) -> float:
    """The left end of the frontier's log risk axis: below the prior and every positive risk."""
    risks = [v for r in data.records for v in (r.risk, r.worst_case_risk) if v > 0]
    return min([data.prior, *risks]) / 2


def roc_figure(data: FigureData) -> Figure:
    """ROC curves on log-log axes: the baseline (dashed) and the recommendation (solid), per attack.

    The recommendation's realistic operating points (the thresholds the
    attacker calibrated on its own data) are marked on its curves.
    """
    fig = Figure(figsize=(6.4, 5.2), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    drawn = []
    lowest = 1.0
    cycle = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457"]
    attack_colors: dict[str, str] = {}
    shown = [(data.baseline, "baseline", "--")]
    if data.chosen is not None and (data.baseline is None or data.chosen.number != data.baseline.number):
        shown.append((data.chosen, "recommended" if data.confirmed else "candidate", "-"))
    for record, who, style in shown:
        if record is None or record.number not in data.roc:
            continue
        roc = data.roc[record.number]
        lowest = min(lowest, 1.0 / max(roc["n_nonmembers"], 1))
        for attack, curve in roc["attacks"].items():
            color = attack_colors.setdefault(attack, cycle[len(attack_colors) % len(cycle)])
            fpr, tpr = np.asarray(curve["fpr"]), np.asarray(curve["tpr"])
            keep = fpr > 0
            ax.plot(fpr[keep], np.maximum(tpr[keep], 1e-6), style, color=color, lw=1.5,
                    label=f"{who} #{record.number}: {attack}", gid=f"roc-{who}-{attack}")
            drawn.append(record.number)
    if data.chosen is not None and data.chosen_realistic is not None:
        points = [p for p in data.chosen_realistic.get("points", []) if p["resolvable"] and p["fpr"] > 0]
        if points:
            ax.scatter([p["fpr"] for p in points], [max(p["tpr"], 1e-6) for p in points], color="black",
                       marker="x", zorder=5, label="realistic operating points (calibrated α)", gid="operating")
    if lowest >= 1.0:  # no stored ROC: an empty log-log frame rather than a singular axis
        lowest = 1e-3
    grid = np.logspace(np.log10(lowest), 0, 50)
    ax.plot(grid, grid, ":", color="grey", lw=1, label="chance (TPR = FPR)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lowest, 1.0)
    ax.set_ylim(max(lowest / 10, 1e-4), 1.05)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("Membership-inference ROC (oracle thresholds)")
    ax.grid(alpha=0.3, which="both")
    if not drawn:
        ax.text(0.5, 0.5, "no ROC data stored for these trials", transform=ax.transAxes, ha="center")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def ppv_prior_figure(data: FigureData, priors: Sequence[float] = PRIOR_GRID) -> Figure:
    """Realistic PPV over the membership prior π for the baseline and the recommendation.

    Also drawn: the adequacy bound, the configured prior, PPV = π (an
    attacker without information) and the recommendation's break-even prior.
    """
    fig = Figure(figsize=(6.4, 5.2), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    priors = list(priors)
    base = data.baseline
    if base is not None:
        ax.plot(priors, ppv_curve(base.realistic["points"], priors), "--", color=_INADEQUATE, lw=1.6,
                label=f"baseline #{base.number}", gid="ppv-baseline")
    if data.chosen is not None and data.chosen_realistic is not None:
        label = f"{'recommended' if data.confirmed else 'candidate'} #{data.chosen.number}"
        if data.confirmed:
            label += " (pooled retrains)"
        ax.plot(priors, ppv_curve(data.chosen_realistic["points"], priors), "-", color=_ADEQUATE, lw=2,
                label=label, gid="ppv-chosen")
        star = data.chosen_realistic.get("break_even_prior")
        if star is not None and 0 < star < 1:
            ax.axvline(star, color=_ADEQUATE, ls=":", lw=1, label=f"break-even prior π* = {star:.3g}")
    ax.plot(priors, priors, ":", color="grey", lw=1, label="no information (PPV = π)")
    ax.axhline(data.max_ppv, color="black", ls="--", lw=1, label=f"adequacy bound {data.max_ppv:g}")
    ax.axvline(data.prior, color="#1565c0", ls="-.", lw=1, label=f"configured prior π = {data.prior:g}")
    ax.set_xscale("log")
    ax.set_xlim(priors[0], priors[-1])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("membership prior π")
    ax.set_ylabel("PPV of the attacker's membership claims")
    ax.set_title("Realistic risk over the membership prior")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


FIGURES: dict[str, tuple[str, Callable[[FigureData], Figure]]] = {
    "frontier": ("Privacy–utility frontier", frontier_figure),
    "roc": ("ROC curves (log-log), baseline and recommendation", roc_figure),
    "ppv_vs_prior": ("Realistic PPV against the membership prior", ppv_prior_figure),
}


def render_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def render_all(data: FigureData) -> dict[str, bytes]:
    """Every figure of :data:`FIGURES` as PNG bytes, keyed by name."""
    return {name: render_png(draw(data)) for name, (_, draw) in FIGURES.items()}


def write_figures(
    folder: Path, data: FigureData, pngs: Mapping[str, bytes] | None = None
) -> list[tuple[str, Path]]:
    """Write ``<folder>/<name>.png`` for every figure (atomically); return (title, path) pairs.

    ``pngs``: the figures of ``data`` already rendered by :func:`render_all`.
    """
    from tuner.run_folder import write_atomic_bytes

    written = []
    for name, png in (pngs if pngs is not None else render_all(data)).items():
        path = Path(folder) / f"{name}.png"
        write_atomic_bytes(path, png)
        written.append((FIGURES[name][0], path))
    return written


def recommendation_text(data: FigureData, summary: Sequence[str] | None = None) -> str:
    """The recommendation (or the current candidate) as Markdown for TensorBoard's text tab."""
    if summary is not None:
        return "\n".join(["```", *summary, "```"])
    chosen = data.chosen
    if chosen is None:
        return f"No adequate trial yet among {len(data.records)} completed (bound PPV ≤ {data.max_ppv:g})."
    lines = [
        f"**Current candidate** (unconfirmed; retrained with fresh seeds when the search ends): "
        f"trial #{chosen.number}, {chosen.defense.describe()}",
        "",
        f"- validation {data.utility_name}: {chosen.utility_validation:.4f}, "
        f"test {data.utility_name}: {chosen.utility_test:.4f}",
        f"- realistic PPV at π = {data.prior:g}: {chosen.risk:.4f} "
        f"[{chosen.risk_interval[0]:.4f}, {chosen.risk_interval[1]:.4f}] (bound {data.max_ppv:g})",
        f"- worst-case AUC {chosen.worst_case_auc:.4f}, PPV at π = 0.5 {chosen.worst_case_risk:.4f}",
    ]
    if chosen.epsilon is not None:
        lines.append(f"- ε = {chosen.epsilon:.3g} (δ = {chosen.delta:.3g})")
    wc = data.worst_case_choice
    if wc is not None and wc.number != chosen.number:
        lines.append(
            f"- worst-case-driven choice: trial #{wc.number} ({wc.defense.describe()}), validation "
            f"{data.utility_name} {wc.utility_validation:.4f} "
            f"({wc.utility_validation - chosen.utility_validation:+.4f})"
        )
    return "\n".join(lines)


__all__ = [
    "FIGURES",
    "PRIOR_GRID",
    "ROC_ATTR",
    "FigureData",
    "figure_data",
    "frontier_figure",
    "frontier_points",
    "ppv_curve",
    "ppv_prior_figure",
    "recommendation_text",
    "render_all",
    "render_png",
    "roc_figure",
    "roc_summary",
    "write_figures",
]
