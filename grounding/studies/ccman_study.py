"""The compatibility study on CCMAN's own shared space, scored by corpus moment search (VCMR).

``tools/train_compat.py ... compat.backbone=ccman``: instead of the small dual encoder, the old and new
models are full CCMANs trained by ``tools/train_grounding.py``'s trainer, the gallery is a moment index
of the test split (``grounding.search``) and every number is VCMR with stage 1 + 2:

1. **old**: a CCMAN trained on ``compat.old.train_fraction`` of the training queries, drawn and seeded
   as in the dual-encoder study (``grounding.studies.protocol.OldModelPlan``), or
   ``compat.old.checkpoint``; its index of the test videos;
2. per method of ``compat.ccman.methods``: a **new** CCMAN trained on all training queries with
   ``compat.old_checkpoint`` = the old one and ``compat.method`` = the method's loss (none for
   ``independent``);
3. **self** (new queries, new index), **cross** (new queries, old index), **adapted** (new queries, old
   index after a forward adapter, ``grounding.search.upgrade``), the **negative flip rate** of cross
   against the old system (queries the old system got right at R1@0.5 and cross gets wrong), and the
   **hot-refresh curve**: the old index backfilled with the new model to each fraction, searched by the
   new model, with its NFR.

Outputs in the work dir: ``old/``, ``new_<method>/`` (training runs), ``ccman_results.csv``,
``ccman_hot_refresh.csv``, ``ccman_summary.md``, ``ccman_metrics.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from grounding.config import apply_overrides, to_plain
from grounding.data.build import build_feature_bank, load_split_records
from grounding.data.records import MomentRecord, write_jsonl
from grounding.engine.settings import Splits
from grounding.engine.trainer import run_training
from grounding.errors import GroundingError
from grounding.eval.vcmr import vcmr_metrics, vcmr_ranks
from grounding.search import upgrade
from grounding.search.build import LibraryVideo, build_index, source_spec
from grounding.search.embed import Granularity
from grounding.search.index import MomentIndex
from grounding.search.model import SearchModel
from grounding.search.searcher import Searcher, SearchSettings
from grounding.studies.protocol import OldModelPlan, StudySummary, Table, compat_section
from grounding.synthetic.prepare import ensure_synthetic_data

log = logging.getLogger("grounding")

HEADLINE = "VCMR-R1@0.5"
R10 = "VCMR-R10@0.5"  # where the old system is right often enough for negative flips to be counted (issue 23)
DEFAULTS = {"methods": ["independent", "l2", "bct", "ract", "unibct"], "epochs": 4, "old_epochs": 4,
            "overrides": [], "rerank": 10, "adapter_epochs": 30, "fractions": [0.0, 0.25, 0.5, 0.75, 1.0],
            "order": "random"}


def _with(cfg: DictConfig, values: dict[str, Any]) -> DictConfig:
    cfg = OmegaConf.create(to_plain(cfg))
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


class CCMANStudy:
    def __init__(self, cfg: DictConfig, work_dir: str | Path, overwrite: bool = False) -> None:
        self.cfg, self.work = cfg, Path(work_dir)
        section = compat_section(cfg)
        self.compat = section
        self.old_plan = OldModelPlan.from_section(section)
        self.settings = {**DEFAULTS, **(section.get("ccman") or {})}
        if self.work.exists() and any(self.work.iterdir()) and not overwrite:
            raise GroundingError(f"{self.work} is not empty; pass --overwrite to replace the study there")
        if overwrite and self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        handler = logging.FileHandler(self.work / "study.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        unknown = [m for m in self.settings["methods"] if m not in section["methods"]]
        if unknown:
            raise GroundingError(f"compat.ccman.methods names {unknown}, which compat.methods does not define")

    # ------------------------------------------------------------------ models
    def _train(self, name: str, values: dict[str, Any]) -> Path:
        cfg = _with(self.cfg, values)
        if self.settings["overrides"]:  # e.g. [model.dim=64] for every CCMAN of the study
            cfg = apply_overrides(cfg, list(self.settings["overrides"]), source="the study's config (compat.ccman.overrides)")
        start = time.perf_counter()
        run_training(cfg, self.work / name, progress=False)
        log.info("%s trained in %.0f s", name, time.perf_counter() - start)
        return self.work / name / "checkpoints" / "last.pt"

    def _old(self, train: list[MomentRecord], test: list[MomentRecord]) -> Path:
        plan = self.old_plan
        if plan.checkpoint is not None:
            return plan.checkpoint
        keep = plan.subset(len(train)).tolist()
        data = self.work / "old_data"
        write_jsonl([train[i] for i in keep], data / "train.jsonl")
        write_jsonl(test, data / "test.jsonl")
        log.info("old CCMAN: %d of %d training queries (%.0f %%)", len(keep), len(train), 100 * plan.train_fraction)
        return self._train("old", {"data.dataset": "native", "data.annotations": {
            "train": str((data / "train.jsonl").resolve()), "test": str((data / "test.jsonl").resolve())},
            "data.durations": {"train": None, "test": None}, "data.tags": {}, "data.synthetic": None,
            "train.epochs": self.settings["old_epochs"], "compat.old_checkpoint": None, "train.seed": plan.seed})

    # ------------------------------------------------------------------ evaluation
    def _search(self, index: Path | MomentIndex, model: SearchModel, records: list[MomentRecord],
                rerank: int | None = None) -> list[dict]:
        index = index if isinstance(index, MomentIndex) else MomentIndex.open(index)
        rerank = int(self.settings["rerank"]) if rerank is None else rerank
        searcher = Searcher(index, model, settings=SearchSettings(top_k=100, rerank=rerank), allow_incompatible=True)
        found = []
        for first in range(0, len(records), 64):
            chunk = records[first:first + 64]
            found += [{"qid": r.qid, **p} for r, p in zip(chunk, searcher.search([r.query for r in chunk]), strict=True)]
        return found

    def _hits(self, preds: list[dict], records: list[MomentRecord], k: int = 1) -> np.ndarray:
        """Which queries have a right moment (own video, IoU >= 0.5) among their first ``k``."""
        return vcmr_ranks(preds, records, (0.5,), k)[0][:, 0] < k

    def run(self, command: str | None = None) -> dict[str, Any]:
        start = time.perf_counter()
        ensure_synthetic_data(self.cfg)
        splits = Splits.from_config(self.cfg)
        test_split = self.compat["eval"].get("split") or splits.evaluate[0]
        train = [r for r in load_split_records(self.cfg.data, splits.train) if r.windows]
        test = [r for r in load_split_records(self.cfg.data, test_split) if r.windows]
        old_ckpt = self._old(train, test)
        old = SearchModel.load(old_ckpt, "cpu")
        bank = build_feature_bank(self.cfg.data, self.cfg.model.get("video_dim"))
        videos = list({r.vid: LibraryVideo(r.vid, float(r.duration)) for r in test}.values())
        spec = source_spec(self.cfg.data)
        build_index(old, self.work / "index_old", videos, bank.get, spec, Granularity(), progress=False)
        old_preds = self._search(self.work / "index_old", old, test)
        old_self = vcmr_metrics(old_preds, test)
        old_s1 = vcmr_metrics(self._search(self.work / "index_old", old, test, rerank=0), test)
        old_hits, old_hits10 = self._hits(old_preds, test), self._hits(old_preds, test, 10)
        ceiling_old = json.loads((old_ckpt.parent.parent / "metrics.json").read_text()).get(test_split, {}) \
            if (old_ckpt.parent.parent / "metrics.json").is_file() else {}
        log.info("old self: %s %.2f", HEADLINE, old_self[HEADLINE])
        train_videos = {r.vid: float(r.duration) for r in train}
        rows, curves = [], []
        for name in self.settings["methods"]:
            spec_m = self.compat["methods"][name]
            values: dict[str, Any] = {"train.epochs": self.settings["epochs"], "compat.old_checkpoint": None}
            if spec_m.get("loss"):
                values.update({"compat.old_checkpoint": str(old_ckpt), "compat.method": spec_m["loss"],
                               "compat.weight": float(spec_m.get("weight", 1.0)),
                               "compat.params": dict(spec_m.get("params") or {})})
            ckpt = self._train(f"new_{name}", values)
            new = SearchModel.load(ckpt, "cpu")
            build_index(new, self.work / f"index_{name}", videos, bank.get, spec, Granularity(), progress=False)
            self_m = vcmr_metrics(self._search(self.work / f"index_{name}", new, test), test)
            cross_preds = self._search(self.work / "index_old", new, test)
            cross = vcmr_metrics(cross_preds, test)
            cross_s1 = vcmr_metrics(self._search(self.work / "index_old", new, test, rerank=0), test)
            self_s1 = vcmr_metrics(self._search(self.work / f"index_{name}", new, test, rerank=0), test)
            cross_hits, cross_hits10 = self._hits(cross_preds, test), self._hits(cross_preds, test, 10)
            adapted_dir = self.work / f"index_{name}_adapted"
            shutil.copytree(self.work / "index_old", adapted_dir)
            upgrade.make_adapter(old, new, [bank.get(v) for v in train_videos], list(train_videos.values()),
                                 Granularity(), self.work / f"adapter_{name}.pt", epochs=int(self.settings["adapter_epochs"]))
            upgrade.apply_adapter(adapted_dir, self.work / f"adapter_{name}.pt", progress=False)
            adapted = vcmr_metrics(self._search(adapted_dir, new, test), test)
            shutil.rmtree(adapted_dir)
            ceiling = json.loads((ckpt.parent.parent / "metrics.json").read_text()).get(test_split, {})
            row = {"method": name, "self": self_m[HEADLINE], "cross": cross[HEADLINE], "adapted": adapted[HEADLINE],
                   "nfr_cross": float((old_hits & ~cross_hits).mean() * 100),
                   "self_R10": self_m[R10], "cross_R10": cross[R10],
                   "nfr_cross_R10": float((old_hits10 & ~cross_hits10).mean() * 100), "self_VR-R1": self_m["VR-R1"],
                   "cross_VR-R1": cross["VR-R1"], "self_stage1_VR-R10": self_s1["VR-R10"],
                   "cross_stage1_VR-R10": cross_s1["VR-R10"], "single_video_R1@0.5": ceiling.get("R1@0.5")}
            rows.append(row)
            log.info("%s: %s", name, ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)))
            refresh = self.work / f"index_{name}_refresh"
            shutil.copytree(self.work / "index_old", refresh)
            for fraction in self.settings["fractions"]:
                if fraction > 0:
                    upgrade.backfill(refresh, new, self.settings["order"], float(fraction), progress=False)
                preds = self._search(refresh, new, test)
                hits, hits10 = self._hits(preds, test), self._hits(preds, test, 10)
                curves.append({"method": name, "fraction": float(fraction),
                               HEADLINE: float(hits.mean() * 100), "NFR": float((old_hits & ~hits).mean() * 100),
                               R10: float(hits10.mean() * 100), "NFR_R10": float((old_hits10 & ~hits10).mean() * 100)})
            shutil.rmtree(refresh)
        result = {"old_self": {HEADLINE: old_self[HEADLINE], R10: old_self[R10], "VR-R1": old_self["VR-R1"],
                               "stage1_VR-R10": old_s1["VR-R10"],
                               "single_video_R1@0.5": ceiling_old.get("R1@0.5")},
                  "methods": rows, "hot_refresh": curves, "queries": len(test), "videos": len(videos),
                  "seconds": time.perf_counter() - start, "command": command}
        self._write(result)
        return result

    def _write(self, result: dict[str, Any]) -> None:
        StudySummary(result, summary_markdown(result),
                     {"ccman_results.csv": Table(list(result["methods"][0]), result["methods"]),
                      "ccman_hot_refresh.csv": Table(list(result["hot_refresh"][0]), result["hot_refresh"])},
                     results_file="ccman_metrics.json", markdown_file="ccman_summary.md").write(self.work)


def summary_markdown(result: dict[str, Any]) -> str:
    old = result["old_self"]
    lines = [f"CCMAN compatibility study: {result['queries']} test queries over {result['videos']} videos, VCMR "
             f"stage 1 + 2 ({result['seconds'] / 60:.1f} min)", "",
             f"old self-test: {HEADLINE} {old[HEADLINE]:.2f}, {R10} {old.get(R10, float('nan')):.2f}, VR-R1 "
             f"{old['VR-R1']:.2f}, stage-1 VR-R10 {old['stage1_VR-R10']:.2f}", "",
             f"| method | self {HEADLINE} | cross | adapted | NFR (cross) | self VR-R1 | cross VR-R1 | stage-1 VR-R10 self | "
             "cross | single-video R1@0.5 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["methods"]:
        ceiling = r["single_video_R1@0.5"]
        lines.append(f"| {r['method']} | {r['self']:.2f} | {r['cross']:.2f} | {r['adapted']:.2f} | {r['nfr_cross']:.2f} | "
                     f"{r['self_VR-R1']:.2f} | {r['cross_VR-R1']:.2f} | {r['self_stage1_VR-R10']:.2f} | "
                     f"{r['cross_stage1_VR-R10']:.2f} | {'-' if ceiling is None else f'{ceiling:.2f}'} |")
    lines += ["", f"at {R10}: | method | self | cross | NFR (cross) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['method']} | {r['self_R10']:.2f} | {r['cross_R10']:.2f} | {r['nfr_cross_R10']:.2f} |"
              for r in result["methods"]]
    lines += ["", f"hot refresh ({HEADLINE} / NFR and {R10} / NFR against the old system, by backfilled fraction):", "",
              "| method | " + " | ".join(f"{f:.0%}" for f in sorted({c['fraction'] for c in result['hot_refresh']})) + " |",
              "|---|" + "---:|" * len({c["fraction"] for c in result["hot_refresh"]})]
    for name in dict.fromkeys(c["method"] for c in result["hot_refresh"]):
        points = [c for c in result["hot_refresh"] if c["method"] == name]
        lines.append(f"| {name} | " + " | ".join(f"{c[HEADLINE]:.1f} / {c['NFR']:.1f}; {c[R10]:.1f} / {c['NFR_R10']:.1f}"
                                                 for c in points) + " |")
    if result.get("command"):
        lines += ["", f"command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def run_ccman_study(cfg: DictConfig, work_dir: str | Path, overwrite: bool = False, command: str | None = None
                    ) -> dict[str, Any]:
    return CCMANStudy(cfg, work_dir, overwrite).run(command)
