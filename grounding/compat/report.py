"""The study's outputs: ``results.csv``, ``hot_refresh.csv``, ``hot_refresh.png``/``.pdf``, ``summary.md``,
and the check of the compatibility claims against the measured numbers."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

RESULT_COLUMNS = ("method", "old_self", "new_self", "cross", "adapted_cross", "nfr")
CURVE_COLUMNS = ("method", "order", "fraction", "R1", "R5", "R10", "mAP", "nfr")
ADAPTED = "+adapter"  # suffix of the curves whose not-yet-backfilled part is the adapted old gallery
COLORS = {"independent": "#7f7f7f", "l2": "#8c564b", "bct": "#1f77b4", "ract": "#d62728", "unibct": "#2ca02c",
          "bict": "#9467bd"}
MARKERS = {"independent": "o", "l2": "v", "bct": "s", "ract": "D", "unibct": "^", "bict": "P"}


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

    def mean_nfr(self, order: str) -> float:
        return float(np.mean([row["NFR"] for row in self.curves[order]]))


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

    @property
    def nfr_order(self) -> str:
        """The order whose mean negative flip rate fills ``results.csv`` (random when it was run)."""
        return "random" if "random" in self.orders else self.orders[0]


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def result_rows(study: StudyResult) -> list[dict[str, str]]:
    rows = []
    for name, res in study.methods.items():
        rows.append({
            "method": name, "old_self": _fmt(study.old_self["R@1"]), "new_self": _fmt(res.new_self["R@1"]),
            "cross": _fmt(res.cross["R@1"]),
            "adapted_cross": _fmt(res.adapted_cross["R@1"] if res.adapted_cross else None),
            "nfr": _fmt(res.mean_nfr(study.nfr_order)),
        })
    return rows


def write_results_csv(study: StudyResult, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(result_rows(study))


def write_hot_refresh_csv(study: StudyResult, path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CURVE_COLUMNS)
        for name, res in study.methods.items():
            for order, rows in res.curves.items():
                label, order_name = (name + ADAPTED, order[: -len(ADAPTED)]) if order.endswith(ADAPTED) else (name, order)
                for row in rows:
                    writer.writerow([label, order_name, f"{row['fraction']:.2f}", *(f"{row[k]:.2f}" for k in
                                     ("R@1", "R@5", "R@10", "mAP", "NFR"))])


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
    held: bool | None  # None: not measurable with the methods that were run
    detail: str


def check_claims(study: StudyResult) -> list[Claim]:
    old = study.old_self["R@1"]
    methods = study.methods
    claims = []
    if "independent" in methods:
        cross = methods["independent"].cross["R@1"]
        claims.append(Claim("the independent new model is not compatible (cross < old self)", cross < old,
                            f"cross {cross:.2f} vs old self {old:.2f}"))
    compatible = [m for m in methods if m != "independent"]
    if compatible:
        fails = [m for m in compatible if not methods[m].cross["R@1"] > old]
        claims.append(Claim("every compatible method is compatible (cross > old self)", not fails,
                            ", ".join(f"{m} {methods[m].cross['R@1']:.2f}" for m in compatible)
                            + f" vs old self {old:.2f}" + (f"; not compatible: {', '.join(fails)}" if fails else "")))
    if "ract" in methods and "bct" in methods:
        details, held = [], True
        for order in study.orders:
            r, b = methods["ract"].curves[order], methods["bct"].curves[order]
            lower = sum(x["NFR"] < y["NFR"] for x, y in zip(r, b, strict=True))
            mean_r, mean_b = methods["ract"].mean_nfr(order), methods["bct"].mean_nfr(order)
            held = held and mean_r < mean_b
            details.append(f"{order}: mean NFR ract {mean_r:.2f} vs bct {mean_b:.2f}, lower at {lower}/{len(r)} fractions")
        claims.append(Claim("RACT has a lower negative flip rate than BCT along the hot-refresh curve", held,
                            "; ".join(details)))
    adapted = [m for m in methods if methods[m].adapted_cross is not None]
    if adapted:
        fails = [m for m in adapted if not methods[m].adapted_cross["R@1"] > methods[m].cross["R@1"]]  # type: ignore[index]
        claims.append(Claim("the forward adapter raises the old gallery's cross-test", not fails,
                            ", ".join(f"{m}: cross {methods[m].cross['R@1']:.2f} -> adapted {methods[m].adapted_cross['R@1']:.2f}"  # type: ignore[index]
                                      for m in adapted)))
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
    parts += [f"Test split: {study.test_queries} queries, a gallery of {study.test_moments} moments. The old model "
              f"saw {study.old_queries} training queries. Wall time {study.seconds / 60:.1f} min.", "",
              "## results.csv (R@1, %)", "",
              f"`nfr` = negative flip rate against the old system, averaged over the {order}-order hot-refresh "
              f"curve ({len(study.fractions)} fractions from 0 to 100 % backfilled).", ""]
    rows = result_rows(study)
    parts += [_table(list(RESULT_COLUMNS), [[r[c] for c in RESULT_COLUMNS] for r in rows]), ""]
    parts += ["## All retrieval metrics (%)", ""]
    header = ["method", "test", "R@1", "R@5", "R@10", "mAP"]
    table = [["old", "old self", *(f"{study.old_self[k]:.2f}" for k in ("R@1", "R@5", "R@10", "mAP"))]]
    for name, res in study.methods.items():
        for test, metrics in (("new self", res.new_self), ("cross", res.cross), ("adapted cross", res.adapted_cross)):
            if metrics is not None:
                table.append([name, test, *(f"{metrics[k]:.2f}" for k in ("R@1", "R@5", "R@10", "mAP"))])
    parts += [_table(header, table), ""]
    parts += ["## Negative flip rate (%) against the old system", ""]
    header = ["method", "cross (0 %)", "self (100 %)"] + [f"mean, {o}" for o in study.orders] + \
             [f"max, {o}" for o in study.orders]
    table = []
    for name, res in study.methods.items():
        table.append([name, f"{res.nfr_cross:.2f}", f"{res.nfr_self:.2f}",
                      *(f"{res.mean_nfr(o):.2f}" for o in study.orders),
                      *(f"{max(r['NFR'] for r in res.curves[o]):.2f}" for o in study.orders)])
    parts += [_table(header, table), ""]
    parts += ["## Claims", ""]
    for claim in check_claims(study):
        verdict = "not measured" if claim.held is None else ("held" if claim.held else "**did not hold**")
        parts.append(f"- {claim.text}: {verdict} ({claim.detail})")
    parts += ["", "Curves: `hot_refresh.csv`, `hot_refresh.png` (`.pdf`); training logs: `tensorboard --logdir tb`.", ""]
    return "\n".join(parts)
