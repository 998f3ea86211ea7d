"""The dual-encoder study's outputs: ``results.csv``, ``hot_refresh.csv``, ``hot_refresh.png``/``.pdf``,
``summary.md``, ``metrics.json`` (written by the protocol's ``StudySummary``), and the check of the
compatibility claims against the measured numbers.

Every headline number comes with a 95 % bootstrap interval over the test queries, and every claim
compares two systems on the same queries with a paired bootstrap: it *held* when the interval of the
difference lies on the claimed side of 0, it is a *tie* when the interval contains 0 (the difference
is smaller than the noise), and it *did not hold* otherwise."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grounding.compat.metrics import bootstrap_ci, paired_difference, verdict  # noqa: E402
from grounding.studies.protocol import StudySummary, Table  # noqa: E402

RESULT_COLUMNS = ("method", "old_self", "new_self", "cross", "cross_ci", "adapted_cross", "nfr", "nfr_ci")
CURVE_COLUMNS = ("method", "order", "fraction", "R1", "R5", "R10", "mAP", "nfr")
ADAPTED = "+adapter"  # suffix of the curves whose not-yet-backfilled part is the adapted old gallery
COLORS = {"independent": "#7f7f7f", "l2": "#8c564b", "bct": "#1f77b4", "ract": "#d62728", "unibct": "#2ca02c",
          "bict": "#9467bd", "bict_joint": "#e377c2"}
MARKERS = {"independent": "o", "l2": "v", "bct": "s", "ract": "D", "unibct": "^", "bict": "P", "bict_joint": "X"}
PAIRS = (("bict", "bict_joint"),)  # a paper's method and our variant of it


@dataclass
class MethodResult:
    name: str
    new_self: dict[str, float]
    cross: dict[str, float]
    adapted_cross: dict[str, float] | None
    nfr_cross: float  # new queries vs old gallery, against the old system
    nfr_self: float  # after a full backfill
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # order -> rows ("<order>+adapter" too)
    seconds: float = 0.0
    # (Q,) per test query: self_hit/self_ap, cross_hit/cross_ap, adapted_hit/adapted_ap, flip_cross,
    # curve_flips/<order> (share of the curve's fractions at which the query flipped)
    per_query: dict[str, np.ndarray] = field(default_factory=dict)

    def mean_nfr(self, order: str) -> float:
        return float(np.mean([row["NFR"] for row in self.curves[order]]))

    def summary(self) -> dict:
        """Everything but the per-query arrays (for ``metrics.json``)."""
        return {"name": self.name, "new_self": self.new_self, "cross": self.cross, "adapted_cross": self.adapted_cross,
                "nfr_cross": self.nfr_cross, "nfr_self": self.nfr_self, "curves": self.curves, "seconds": self.seconds}


@dataclass
class StudyResult:
    old_self: dict[str, float]
    methods: dict[str, MethodResult]
    orders: list[str]
    fractions: list[float]
    old_queries: int = 0
    test_queries: int = 0
    test_moments: int = 0
    seconds: float = 0.0
    old_per_query: dict[str, np.ndarray] = field(default_factory=dict)  # hit, ap of the old system (old/old)
    correct_per_query: float = 1.0  # mean number of correct gallery items per query

    @property
    def nfr_order(self) -> str:
        """The order whose mean negative flip rate fills ``results.csv`` (random when it was run)."""
        return "random" if "random" in self.orders else self.orders[0]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ci(values: np.ndarray | None) -> str:
    if values is None:
        return ""
    low, high = bootstrap_ci(values)
    return f"{low:.1f}..{high:.1f}"


def result_rows(study: StudyResult) -> list[dict[str, str]]:
    rows = []
    for name, res in study.methods.items():
        rows.append({
            "method": name, "old_self": _fmt(study.old_self["R@1"]), "new_self": _fmt(res.new_self["R@1"]),
            "cross": _fmt(res.cross["R@1"]), "cross_ci": _ci(res.per_query.get("cross_hit")),
            "adapted_cross": _fmt(res.adapted_cross["R@1"] if res.adapted_cross else None),
            "nfr": _fmt(res.mean_nfr(study.nfr_order)),
            "nfr_ci": _ci(res.per_query.get(f"curve_flips/{study.nfr_order}")),
        })
    return rows


def intervals(study: StudyResult) -> dict[str, dict[str, list[float]]]:
    """95 % bootstrap intervals (percent) of R@1 and mAP of every test, and of the NFRs, per method."""
    out: dict[str, dict[str, list[float]]] = {}
    if study.old_per_query:
        out["old"] = {"self_R@1": list(bootstrap_ci(study.old_per_query["hit"])),
                      "self_mAP": list(bootstrap_ci(study.old_per_query["ap"]))}
    for name, res in study.methods.items():
        q = res.per_query
        cells = {}
        for test in ("self", "cross", "adapted"):
            if f"{test}_hit" in q:
                cells[f"{test}_R@1"] = list(bootstrap_ci(q[f"{test}_hit"]))
                cells[f"{test}_mAP"] = list(bootstrap_ci(q[f"{test}_ap"]))
        if "flip_cross" in q:
            cells["nfr_cross"] = list(bootstrap_ci(q["flip_cross"]))
        for order in study.orders:
            if f"curve_flips/{order}" in q:
                cells[f"mean_nfr_{order}"] = list(bootstrap_ci(q[f"curve_flips/{order}"]))
        out[name] = cells
    return out


def curve_rows(study: StudyResult) -> list[dict[str, str]]:
    """The rows of ``hot_refresh.csv``: one per method, order and backfilled fraction (the adapted old
    gallery's curves as method ``<name>+adapter``)."""
    rows = []
    for name, res in study.methods.items():
        for order, points in res.curves.items():
            label, order_name = (name + ADAPTED, order[: -len(ADAPTED)]) if order.endswith(ADAPTED) else (name, order)
            for point in points:
                values = (f"{point[k]:.2f}" for k in ("R@1", "R@5", "R@10", "mAP", "NFR"))
                rows.append(dict(zip(CURVE_COLUMNS, (label, order_name, f"{point['fraction']:.2f}", *values), strict=True)))
    return rows


def study_summary(study: StudyResult, command: str | None = None) -> StudySummary:
    """``results.csv``, ``hot_refresh.csv``, ``summary.md`` and ``metrics.json`` (every number, the
    intervals and the claims), for the protocol's one writer."""
    results = {"old_self": study.old_self, "methods": {k: v.summary() for k, v in study.methods.items()},
               "intervals": intervals(study), "claims": [asdict(c) for c in check_claims(study)],
               "seconds": study.seconds}
    return StudySummary(results, summary_markdown(study, command),
                        {"results.csv": Table(RESULT_COLUMNS, result_rows(study)),
                         "hot_refresh.csv": Table(CURVE_COLUMNS, curve_rows(study))})


def plot_hot_refresh(study: StudyResult, path: Path) -> None:
    """R@1 (top) and negative flip rate (bottom) against the backfilled share, one column per order."""
    orders = study.orders
    style = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
             "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}
    with plt.rc_context(style):
        fig, axes = plt.subplots(2, len(orders), figsize=(3.4 * len(orders) + 0.4, 5.2), sharex=True, squeeze=False)
        for col, order in enumerate(orders):
            top, bottom = axes[0, col], axes[1, col]
            top.axhline(study.old_self["R@1"], color="black", lw=0.9, ls=":", label="old system (old/old)")
            for name, res in study.methods.items():
                for key, dashed in ((order, False), (order + ADAPTED, True)):
                    if key not in res.curves:
                        continue
                    rows = res.curves[key]
                    x = [100 * r["fraction"] for r in rows]
                    kw = dict(color=COLORS.get(name), marker=MARKERS.get(name, "o"), ms=3.5, lw=1.4,
                              ls="--" if dashed else "-", label=name + (" + forward adapter" if dashed else ""))
                    top.plot(x, [r["R@1"] for r in rows], **kw)
                    bottom.plot(x, [r["NFR"] for r in rows], **kw)
            top.set_title(f"{order} backfilling")
            top.set_ylabel("R@1 (%)" if col == 0 else "")
            bottom.set_ylabel("negative flip rate (%)" if col == 0 else "")
            bottom.set_xlabel("gallery backfilled (%)")
            for ax in (top, bottom):
                ax.grid(alpha=0.3, lw=0.5)
                ax.set_xlim(0, 100)
            bottom.set_ylim(bottom=0)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.savefig(path, dpi=200)
        fig.savefig(path.with_suffix(".pdf"))
        plt.close(fig)


@dataclass
class Claim:
    text: str
    held: bool | None  # True: significant in the claimed direction; None: not measurable with these methods
    detail: str
    verdict: str = "not measured"  # held | tie | did not hold | not measured


def _compare(a: np.ndarray | None, b: np.ndarray | None, want: str) -> tuple[str, str]:
    """Paired bootstrap of ``a - b`` (per-query 0/1 or rates): (held | tie | did not hold, detail)."""
    if a is None or b is None:
        return "not measured", "no per-query outcomes"
    mean, low, high = paired_difference(a, b)
    found = verdict(low, high)
    outcome = "held" if found == want else "tie" if found == "tie" else "did not hold"
    return outcome, f"difference {mean:+.2f} points, 95 % CI {low:+.2f}..{high:+.2f}"


def _claim(text: str, outcomes: list[tuple[str, str, str]]) -> Claim:
    """One claim over several (label, outcome, detail) checks: held if all held, tie if none failed."""
    if not outcomes:
        return Claim(text, None, "not measurable", "not measured")
    results = [o for _, o, _ in outcomes]
    overall = "held" if all(r == "held" for r in results) else "did not hold" if "did not hold" in results else "tie"
    detail = "; ".join(f"{label}: {o} ({d})" for label, o, d in outcomes)
    return Claim(text, overall == "held", detail, overall)


def check_claims(study: StudyResult) -> list[Claim]:
    methods, old_hit = study.methods, study.old_per_query.get("hit")
    claims = []
    if "independent" in methods:
        res = methods["independent"]
        outcome, detail = _compare(res.per_query.get("cross_hit"), old_hit, "lower")
        claims.append(_claim("the independent new model is not compatible (cross R@1 < old self R@1)",
                             [(f"cross {res.cross['R@1']:.2f} vs old self {study.old_self['R@1']:.2f}", outcome, detail)]))
    compatible = [m for m in methods if m != "independent"]
    if compatible:
        checks = [(f"{m} {methods[m].cross['R@1']:.2f}", *_compare(methods[m].per_query.get("cross_hit"), old_hit, "higher"))
                  for m in compatible]
        claims.append(_claim(f"every compatible method is compatible (cross R@1 > old self R@1 = {study.old_self['R@1']:.2f})",
                             checks))
    if "ract" in methods and "bct" in methods:
        checks = []
        for order in study.orders:
            key = f"curve_flips/{order}"
            label = f"{order}: mean NFR ract {methods['ract'].mean_nfr(order):.2f} vs bct {methods['bct'].mean_nfr(order):.2f}"
            checks.append((label, *_compare(methods["ract"].per_query.get(key), methods["bct"].per_query.get(key), "lower")))
        claims.append(_claim("RACT has a lower negative flip rate than BCT along the hot-refresh curve", checks))
    adapted = [m for m in methods if methods[m].adapted_cross is not None]
    if adapted:
        checks = [(f"{m}: cross {methods[m].cross['R@1']:.2f} -> adapted {methods[m].adapted_cross['R@1']:.2f}",  # type: ignore[index]
                   *_compare(methods[m].per_query.get("adapted_hit"), methods[m].per_query.get("cross_hit"), "higher"))
                  for m in adapted]
        claims.append(_claim("the forward adapter raises the old gallery's cross-test R@1", checks))
    for paper, ours in PAIRS:
        if paper in methods and ours in methods:
            a, b = methods[paper], methods[ours]
            checks = [(f"cross R@1 {paper} {a.cross['R@1']:.2f} vs {ours} {b.cross['R@1']:.2f}",
                       *_compare(a.per_query.get("cross_hit"), b.per_query.get("cross_hit"), "higher")),
                      (f"self R@1 {a.new_self['R@1']:.2f} vs {b.new_self['R@1']:.2f}",
                       *_compare(a.per_query.get("self_hit"), b.per_query.get("self_hit"), "higher"))]
            if a.adapted_cross is not None and b.adapted_cross is not None:
                checks.append((f"adapted cross R@1 {a.adapted_cross['R@1']:.2f} vs {b.adapted_cross['R@1']:.2f}",
                               *_compare(a.per_query.get("adapted_hit"), b.per_query.get("adapted_hit"), "higher")))
            claims.append(_claim(f"{paper} (as its paper defines it) beats {ours} (our variant)", checks))
    return claims


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(study: StudyResult, command: str | None = None) -> str:
    order = study.nfr_order
    parts = ["# Compatibility study", ""]
    if command:
        parts += [f"Command: `{command}`", ""]
    parts += [f"Test split: {study.test_queries} queries, a gallery of {study.test_moments} moments "
              f"({study.correct_per_query:.2f} correct items per query on average: equivalent moments count). The old "
              f"model saw {study.old_queries} training queries. Wall time {study.seconds / 60:.1f} min.", "",
              "Intervals: 95 % bootstrap over the test queries (1,000 resamples).", "",
              "## results.csv (R@1, %)", "",
              f"`nfr` = negative flip rate against the old system, averaged over the {order}-order hot-refresh "
              f"curve ({len(study.fractions)} fractions from 0 to 100 % backfilled).", ""]
    rows = result_rows(study)
    parts += [_table(list(RESULT_COLUMNS), [[r[c] for c in RESULT_COLUMNS] for r in rows]), ""]
    parts += ["## All retrieval metrics (%)", ""]
    ci = intervals(study)

    def cell(value: float, bounds: list[float] | None) -> str:
        return f"{value:.2f}" + (f" [{bounds[0]:.1f}, {bounds[1]:.1f}]" if bounds else "")

    header = ["method", "test", "R@1 [95 % CI]", "R@5", "R@10", "mAP [95 % CI]"]
    old_ci = ci.get("old", {})
    table = [["old", "old self", cell(study.old_self["R@1"], old_ci.get("self_R@1")),
              *(f"{study.old_self[k]:.2f}" for k in ("R@5", "R@10")), cell(study.old_self["mAP"], old_ci.get("self_mAP"))]]
    for name, res in study.methods.items():
        for test, key, metrics in (("new self", "self", res.new_self), ("cross", "cross", res.cross),
                                   ("adapted cross", "adapted", res.adapted_cross)):
            if metrics is not None:
                table.append([name, test, cell(metrics["R@1"], ci.get(name, {}).get(f"{key}_R@1")),
                              *(f"{metrics[k]:.2f}" for k in ("R@5", "R@10")),
                              cell(metrics["mAP"], ci.get(name, {}).get(f"{key}_mAP"))])
    parts += [_table(header, table), ""]
    parts += ["## Negative flip rate (%) against the old system", ""]
    header = ["method", "cross (0 %)", "self (100 %)"] + [f"mean, {o}" for o in study.orders] + \
             [f"max, {o}" for o in study.orders]
    table = []
    for name, res in study.methods.items():
        table.append([name, cell(res.nfr_cross, ci.get(name, {}).get("nfr_cross")), f"{res.nfr_self:.2f}",
                      *(cell(res.mean_nfr(o), ci.get(name, {}).get(f"mean_nfr_{o}")) for o in study.orders),
                      *(f"{max(r['NFR'] for r in res.curves[o]):.2f}" for o in study.orders)])
    parts += [_table(header, table), ""]
    parts += ["## Claims", ""]
    parts += ["A claim *held* when the paired-bootstrap interval of the difference lies on the claimed side of 0, "
              "is a *tie* when it contains 0, and *did not hold* otherwise.", ""]
    for claim in check_claims(study):
        shown = {"did not hold": "**did not hold**", "tie": "*tie*"}.get(claim.verdict, claim.verdict)
        parts.append(f"- {claim.text}: {shown} ({claim.detail})")
    parts += ["", "Curves: `hot_refresh.csv`, `hot_refresh.png` (`.pdf`); training logs: `tensorboard --logdir tb`.", ""]
    return "\n".join(parts)
