"""The compatibility claims over seeds and regimes: where does each paper's claim hold?

A *training regime* is a set of config overrides of the dual-encoder study (``compat.regimes.train``:
the old model's capacity, its share of the training data, its feature backbone); each runs once per seed
(``compat.regimes.seeds``: the new models', the old model's and the old subset's seeds and the random
backfill order all move with it) and leaves its test embeddings (``embeddings.npz``). An *evaluation
regime* (``compat.regimes.eval``: the gallery's size, the number of correct items per query) re-scores
the default training regime's embeddings without training again. Every regime answers four claims:

- ``ract_nfr``: RACT's mean NFR along the random-order hot-refresh curve is below BCT's;
- ``uncertainty_nfr`` (for RACT and for BCT): uncertainty-first backfilling has a lower mean NFR than
  the random order;
- ``unibct_cross``: UniBCT's cross-test R@1 is above BCT's;
- ``bict_adapter``: BiCT's forward adapter raises the old gallery's cross-test R@1.

A claim compares two systems on the same test queries. Its per-query difference is averaged over the
seeds, its interval is a paired percentile bootstrap over the queries, its effect size Cohen's ``d_z``
(mean over standard deviation of the per-query differences). It *holds* when the interval lies on the
claimed side of 0 and every seed's mean difference has the claimed sign; it is a *tie* when the interval
contains 0, and it *did not hold* otherwise (or *mixed* when the interval excludes 0 but a seed disagrees).
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grounding.atomic import write_atomic  # noqa: E402
from grounding.compat.backfill import backfill_order  # noqa: E402
from grounding.compat.metrics import bootstrap_ci, hot_refresh_curve, retrieve  # noqa: E402
from grounding.errors import GroundingError  # noqa: E402

log = logging.getLogger("grounding")

CLAIMS = (  # name, text, system a, system b, wanted sign of a - b
    ("ract_nfr", "RACT's mean NFR (random order) < BCT's", "ract:flips/random", "bct:flips/random", "lower"),
    ("ract_nfr_uncertainty", "RACT's mean NFR (uncertainty order) < BCT's", "ract:flips/uncertainty",
     "bct:flips/uncertainty", "lower"),
    ("uncertainty_nfr_ract", "uncertainty-first < random order on NFR (RACT)", "ract:flips/uncertainty",
     "ract:flips/random", "lower"),
    ("uncertainty_nfr_bct", "uncertainty-first < random order on NFR (BCT)", "bct:flips/uncertainty",
     "bct:flips/random", "lower"),
    ("unibct_cross", "UniBCT's cross-test R@1 > BCT's", "unibct:cross", "bct:cross", "higher"),
    ("bict_adapter", "BiCT's forward adapter raises the cross-test R@1", "bict:adapted", "bict:cross", "higher"),
)
CURVES = (("bct", "random", "#1f77b4", "-"), ("bct", "uncertainty", "#1f77b4", "--"),
          ("ract", "random", "#d62728", "-"), ("ract", "uncertainty", "#d62728", "--"),
          ("unibct", "random", "#2ca02c", ":"))


@dataclass
class RegimeSpec:
    name: str
    train: str  # the training regime whose embeddings it reads
    relevance: str = "description"  # description: every fitting moment is correct; single: its own only
    gallery_share: float = 1.0  # share of the test videos whose moments (and queries) are kept


@dataclass
class Outcome:
    """One seed of one regime: per-query outcomes ("method:key" -> (Q,)) and the NFR curves."""

    per_query: dict[str, np.ndarray]
    curves: dict[str, list[float]]  # "method/order" -> NFR per fraction
    old_self: float
    cross: dict[str, float]
    gallery: int
    correct_per_query: float


@dataclass
class ClaimResult:
    name: str
    text: str
    mean: float  # percent points, mean over seeds of a - b
    low: float
    high: float
    effect: float  # Cohen's d_z of the seed-averaged per-query difference
    per_seed: list[float] = field(default_factory=list)
    verdict: str = "tie"


def regime_specs(section: dict[str, Any]) -> list[RegimeSpec]:
    """The training regimes (default evaluation) and the evaluation regimes (on ``default``)."""
    train = section.get("train") or {}
    if "default" not in train:
        raise GroundingError("compat.regimes.train must define 'default' (the study's default config, [] overrides)")
    specs = [RegimeSpec(name, name) for name in train]
    for name, spec in (section.get("eval") or {}).items():
        relevance = spec.get("relevance", "description")
        if relevance not in ("description", "single"):
            raise GroundingError(f"compat.regimes.eval.{name}.relevance must be description or single, not {relevance}")
        specs.append(RegimeSpec(name, "default", relevance, float(spec.get("gallery_share", 1.0))))
    return specs


def seed_overrides(seed: int) -> list[str]:
    """What moves with a seed: the new models', the old model's and the old subset's seeds, the random order
    (seed 0 is the default config's study: new seed 0, old seed 1, subset 0, backfill 0)."""
    return [f"compat.train.seed={seed}", f"compat.old.train.seed={1 + seed}", f"compat.old.subset_seed={seed}",
            f"compat.backfill.seed={seed}"]


def _subset(emb: dict[str, np.ndarray], share: float) -> tuple[np.ndarray, np.ndarray]:
    """Queries and gallery items of a fixed random ``share`` of the test videos (the same for every seed,
    so that the seeds' outcomes pair query by query)."""
    moment_video = emb["moment_video"]
    if share >= 1:
        return np.arange(len(emb["query_moment"])), np.arange(len(moment_video))
    videos = np.unique(moment_video)
    keep = np.random.default_rng(1000).choice(videos, max(1, round(share * len(videos))), replace=False)
    items = np.flatnonzero(np.isin(moment_video, keep))
    queries = np.flatnonzero(np.isin(emb["query_moment"], items))
    return queries, items


def evaluate_run(emb: dict[str, np.ndarray], spec: RegimeSpec, methods: Sequence[str], fractions: Sequence[float],
                 seed: int, backfill: dict[str, Any]) -> Outcome:
    """Re-score one run's test embeddings under ``spec``: cross, self, adapted R@1 hits, and per-query
    flips along both backfill orders' hot-refresh curves."""
    queries, items = _subset(emb, spec.gallery_share)
    if spec.relevance == "single":
        position = np.full(len(emb["moment_video"]), -1)
        position[items] = np.arange(len(items))
        relevant = position[emb["query_moment"][queries]]
    else:
        relevant = emb["relevant"][np.ix_(queries, items)]
    old_gallery = emb["old_gallery"][items]
    old = retrieve(emb["old_queries"][queries], old_gallery, relevant, (1,))
    classifier = emb["old_train_moments"] if backfill.get("classifier", "train") == "train" else None
    orders = {kind: backfill_order(kind, old_gallery, seed, backfill.get("uncertainty", "entropy"),
                                   float(backfill.get("temperature", 0.05)), classifier)
              for kind in ("random", "uncertainty")}
    per_query, curves, cross = {}, {}, {}
    for name in methods:
        new_queries, new_gallery = emb[f"{name}/queries"][queries], emb[f"{name}/gallery"][items]
        cross_hits = retrieve(new_queries, old_gallery, relevant, (1,)).hits
        per_query[f"{name}:cross"] = cross_hits
        per_query[f"{name}:self"] = retrieve(new_queries, new_gallery, relevant, (1,)).hits
        cross[name] = 100.0 * float(cross_hits.mean())
        if f"{name}/adapted" in emb:
            per_query[f"{name}:adapted"] = retrieve(new_queries, emb[f"{name}/adapted"][items], relevant, (1,)).hits
        for kind, order in orders.items():
            flips: list[np.ndarray] = []
            rows = hot_refresh_curve(new_queries, old_gallery, new_gallery, relevant, order, fractions, old.hits,
                                     (1,), flips)
            curves[f"{name}/{kind}"] = [row["NFR"] for row in rows]
            per_query[f"{name}:flips/{kind}"] = np.mean(flips, 0)
    correct = float(np.asarray(relevant).sum(1).mean()) if np.asarray(relevant).ndim == 2 else 1.0
    return Outcome(per_query, curves, old.metrics["R@1"], cross, len(items), correct)


def claim(name: str, text: str, a: list[np.ndarray], b: list[np.ndarray], want: str, samples: int = 1000) -> ClaimResult:
    """Paired comparison of ``a`` and ``b`` over seeds (each (Q,) per seed, the same queries)."""
    diffs = [np.asarray(x, float) - np.asarray(y, float) for x, y in zip(a, b, strict=True)]
    per_seed = [100.0 * float(d.mean()) for d in diffs]
    pooled = np.mean(diffs, 0)  # per query, averaged over the seeds
    low, high = bootstrap_ci(pooled, samples)
    spread = float(pooled.std(ddof=1)) if len(pooled) > 1 else 0.0
    effect = float(pooled.mean()) / spread if spread > 0 else 0.0
    sign = 1 if want == "higher" else -1
    if (low > 0 and sign > 0) or (high < 0 and sign < 0):
        verdict = "held" if all(sign * v > 0 for v in per_seed) else "mixed"
    elif low <= 0 <= high:
        verdict = "tie"
    else:
        verdict = "did not hold"
    return ClaimResult(name, text, 100.0 * float(pooled.mean()), low, high, effect, per_seed, verdict)


@dataclass
class RegimeResult:
    spec: RegimeSpec
    claims: list[ClaimResult]
    old_self: list[float]
    cross: dict[str, list[float]]
    curves: dict[str, list[float]]  # mean over seeds
    gallery: int
    correct_per_query: float


def analyse(outcomes: list[Outcome], spec: RegimeSpec) -> RegimeResult:
    claims = []
    for name, text, a, b, want in CLAIMS:
        if all(a in o.per_query and b in o.per_query for o in outcomes):
            claims.append(claim(name, text, [o.per_query[a] for o in outcomes], [o.per_query[b] for o in outcomes], want))
    curves = {key: list(np.mean([o.curves[key] for o in outcomes], 0)) for key in outcomes[0].curves}
    cross = {m: [o.cross[m] for o in outcomes] for m in outcomes[0].cross}
    return RegimeResult(spec, claims, [o.old_self for o in outcomes], cross, curves, outcomes[0].gallery,
                        outcomes[0].correct_per_query)


def plot_regimes(results: list[RegimeResult], fractions: Sequence[float], path: Path) -> None:
    """NFR against the backfilled share, one panel per regime (mean over seeds)."""
    cols = min(3, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols, 2.4 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, result in zip(axes.flat, results, strict=False):  # spare panels hidden above
        for method, order, color, style in CURVES:
            key = f"{method}/{order}"
            if key in result.curves:
                ax.plot([100 * f for f in fractions], result.curves[key], color=color, linestyle=style,
                        label=f"{method}, {order}")
        ax.set_title(result.spec.name.replace("_", " "), fontsize=8)
        ax.set_xlabel("backfilled %", fontsize=7)
        ax.tick_params(labelsize=6)
    for row in axes:
        row[0].set_ylabel("NFR % (mean of seeds)", fontsize=7)
    axes[0][-1].legend(fontsize=5.5, loc="upper right")
    fig.tight_layout()
    write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)
    plt.close(fig)


def _interval(c: ClaimResult) -> str:
    return f"{c.mean:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def regimes_markdown(results: list[RegimeResult], seeds: Sequence[int], command: str | None) -> str:
    lines = ["# Compatibility claims by regime", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += [f"Seeds {list(seeds)}; differences in percent points (a - b), averaged over the seeds, with a 95 % "
              "paired bootstrap interval over the test queries; d = Cohen's d_z; per seed = each seed's mean "
              "difference. held = interval on the claimed side and every seed agrees.", "",
              "| regime | gallery | correct/query | old self R@1 (seeds) | cross R@1 bct / ract / unibct / bict (mean) |",
              "|---|---:|---:|---|---|"]
    for r in results:
        cross = " / ".join(f"{np.mean(r.cross[m]):.1f}" for m in ("bct", "ract", "unibct", "bict") if m in r.cross)
        lines.append(f"| {r.spec.name} | {r.gallery} | {r.correct_per_query:.2f} | "
                     f"{', '.join(f'{v:.1f}' for v in r.old_self)} | {cross} |")
    for name, text, *_ in CLAIMS:
        lines += ["", f"**{text}** (`{name}`)", "", "| regime | difference [95 % CI] | d | per seed | verdict |",
                  "|---|---|---:|---|---|"]
        for r in results:
            for c in r.claims:
                if c.name == name:
                    lines.append(f"| {r.spec.name} | {_interval(c)} | {c.effect:+.2f} | "
                                 f"{', '.join(f'{v:+.2f}' for v in c.per_seed)} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def run_regimes(config: str, work_dir: str | Path, overrides: Sequence[str] = (), analyse_only: bool = False,
                command: str | None = None) -> list[RegimeResult]:
    """Train every training regime once per seed (skipping finished runs), then score every regime."""
    from grounding.config import load_config
    from grounding.studies.compat_study import run_study

    work_dir = Path(work_dir)
    cfg = load_config(config, list(overrides))
    section = dict(cfg.compat.get("regimes") or {})
    if not section:
        raise GroundingError(f"{config} has no compat.regimes section; see configs/compat/regimes.yaml")
    from grounding.config import to_plain

    section = to_plain(section)
    seeds = [int(s) for s in section.get("seeds", [0, 1, 2])]
    specs = regime_specs(section)
    for name, regime_overrides in section["train"].items():
        for seed in seeds:
            folder = work_dir / name / f"seed{seed}"
            if (folder / "embeddings.npz").exists() or analyse_only:
                continue
            log.info("=== regime %s, seed %d", name, seed)
            run_cfg = load_config(config, [*overrides, *(regime_overrides or []), *seed_overrides(seed)])
            run_study(run_cfg, folder, overwrite=True,
                      command=f"python tools/train_compat.py --config {config} --work-dir {folder} "
                              + " ".join(shlex.quote(o) for o in [*overrides, *(regime_overrides or []), *seed_overrides(seed)]))
    compat = to_plain(cfg.compat)
    steps = int(compat["backfill"].get("steps", 10))
    fractions = [i / steps for i in range(steps + 1)]
    methods = [m for m in compat["run"] if m in ("independent", "bct", "ract", "unibct", "bict")]
    results, cache = [], {}
    for spec in specs:
        outcomes = []
        for seed in seeds:
            path = work_dir / spec.train / f"seed{seed}" / "embeddings.npz"
            if not path.exists():
                raise GroundingError(f"{path} is missing: run without --analyse-only to train it")
            if path not in cache:
                with np.load(path) as data:
                    cache[path] = {key: data[key] for key in data.files}
            outcomes.append(evaluate_run(cache[path], spec, methods, fractions, seed, compat["backfill"]))
        results.append(analyse(outcomes, spec))
        log.info("regime %s: %s", spec.name, ", ".join(f"{c.name} {c.verdict}" for c in results[-1].claims))
    plot_regimes(results, fractions, work_dir / "regimes_nfr.png")
    text = regimes_markdown(results, seeds, command)
    write_atomic(work_dir / "regimes.md", lambda fh: fh.write(text), binary=False)
    payload = [{"regime": r.spec.__dict__, "old_self": r.old_self, "cross": r.cross, "curves": r.curves,
                "gallery": r.gallery, "correct_per_query": r.correct_per_query,
                "claims": [c.__dict__ for c in r.claims]} for r in results]
    write_atomic(work_dir / "regimes.json", lambda fh: fh.write(json.dumps(payload, indent=1)), binary=False)
    return results


__all__ = ["CLAIMS", "RegimeSpec", "claim", "evaluate_run", "regime_specs", "run_regimes", "seed_overrides"]
