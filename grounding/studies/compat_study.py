"""The compatibility study behind ``tools/train_compat.py``.

1. the **old model**: trained on ``compat.old.train_fraction`` of the training queries (or loaded from
   ``compat.old.checkpoint``), then frozen; its embeddings of every training moment/sentence and of
   the test gallery are computed once;
2. one **new model** per method in ``compat.run`` (all training queries, same seed), each with the
   compatibility loss and options of ``compat.methods.<name>``;
3. a **forward adapter** (old -> new) for the methods in ``compat.adapter.apply_to`` or with
   ``forward: joint`` (trained with the new model, then fine-tuned on the frozen new model);
4. **evaluation** on the test split: old self, new self, cross, adapted cross, negative flips, and
   the hot-refresh curves for each backfill order.

The work dir receives ``config.yaml``, ``train.log``, ``checkpoints/{old,new_<method>}.pt``, ``tb/``,
``results.csv``, ``hot_refresh.csv``, ``hot_refresh.png`` (and ``.pdf``), ``summary.md`` and
``metrics.json``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from grounding.compat.adapter import ForwardAdapter, fit_adapter
from grounding.compat.backfill import backfill_order
from grounding.compat.metrics import hot_refresh_curve, negative_flip_rate, relevance_by_description, retrieve
from grounding.compat.objectives import OldReference, build_compat_loss
from grounding.config import save_config, to_plain
from grounding.data.build import DataBundle
from grounding.data.settings import max_words as data_max_words
from grounding.data.text import build_text_input
from grounding.engine.run import Run
from grounding.engine.runtime import seed_everything
from grounding.engine.settings import Splits
from grounding.engine.settings import TrainSettings as RunSettings
from grounding.errors import GroundingError
from grounding.inference.checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from grounding.studies.compat_report import (
    ADAPTED,
    MethodResult,
    StudyResult,
    check_claims,
    plot_hot_refresh,
    study_summary,
)
from grounding.studies.dual_encoder import DualEncoder, SplitEmbeddings, build_dual_encoder, embed_split
from grounding.studies.dual_encoder_training import CompatTerms, TrainSettings, train_dual_encoder
from grounding.studies.feature_views import old_feature_view
from grounding.studies.moment_split import MomentSplit, build_moment_split, encode_words
from grounding.studies.protocol import OldModelPlan, compat_section
from grounding.synthetic.prepare import ensure_synthetic_data
from grounding.synthetic.shortcuts import read_sidecar

log = logging.getLogger("grounding")

OUTPUTS = ("results.csv", "hot_refresh.csv", "hot_refresh.png", "hot_refresh.pdf", "summary.md", "embeddings.npz")

def description_key(sentence: str, side: dict[str, Any] | None = None) -> str:
    """What a query asks for: the sidecar's canonical ``event`` (and ``relation``) where the benchmark
    provides them (the synthetic one does), else the sentence lower-cased with punctuation dropped."""
    if side and side.get("event"):
        relation = side.get("relation")
        return side["event"] + (f" | {relation[0]} {relation[1]}" if relation else "")
    return " ".join("".join(ch if ch.isalnum() or ch == "'" else " " for ch in sentence.lower()).split())


def _merged(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    return {**base, **{k: v for k, v in (override or {}).items() if v is not None}}


class CompatStudy:
    def __init__(self, cfg: DictConfig, work_dir: str | Path, overwrite: bool = False) -> None:
        self.compat = compat_section(cfg)
        self.old_plan = OldModelPlan.from_section(self.compat)
        self.cfg = cfg
        self.session = Run.start(RunSettings.from_config(cfg), work_dir, overwrite=overwrite)
        self.work_dir, self.device, self.writer = Path(work_dir), self.session.device, self.session.writer
        for name in OUTPUTS:
            (self.work_dir / name).unlink(missing_ok=True)
        save_config(cfg, self.work_dir / "config.yaml")
        ensure_synthetic_data(cfg)
        self.splits = Splits.from_config(cfg)

    # ------------------------------------------------------------------ data
    def _load_data(self) -> None:
        cfg = self.cfg
        self.data = DataBundle(cfg)
        max_words = data_max_words(cfg)
        train_split = self.splits.train
        test_split = self.compat["eval"].get("split") or self.splits.evaluate[0]
        self.data.validate([train_split, test_split])  # features of both splits, before any training
        self.train = build_moment_split(self.data.records(train_split), self.data.bank, self.data.text, max_words, train_split)
        self.test = build_moment_split(self.data.records(test_split), self.data.bank, self.data.text, max_words, test_split)
        self.test_name = test_split
        self.relevant = self._relevance(test_split)

    def _relevance(self, split: str) -> np.ndarray:
        """(Q, G) correct items of the test queries: with ``compat.eval.relevance: description`` (default)
        every moment the query's description fits; ``single``: only its own moment."""
        mode = self.compat["eval"].get("relevance", "description")
        if mode == "single":
            return self.test.query_moment.numpy()
        if mode != "description":
            raise GroundingError(f"compat.eval.relevance must be 'description' or 'single', not '{mode}'")
        tags_path = self.data.tags_path(split)
        sidecar = read_sidecar(tags_path) if tags_path is not None else {}
        records = {r.qid: r for r in self.data.records(split)}
        keys, moment_keys = [], [set() for _ in range(self.test.num_moments)]
        for qid, moment in zip(self.test.qids, self.test.query_moment.tolist(), strict=True):
            keys.append(description_key(records[qid].query, sidecar.get(qid)))
            if sidecar.get(qid, {}).get("event"):
                moment_keys[moment].add(sidecar[qid]["event"])  # the moment shows this event
        relevant = relevance_by_description(keys, self.test.query_moment.numpy(), self.test.num_moments, moment_keys)
        log.info("%s: %.2f correct gallery items per query on average (equivalent moments count, "
                 "compat.eval.relevance=description)", split, relevant.sum(1).mean())
        return relevant

    def _new_model(self, model_cfg: dict[str, Any], seed: int, split: MomentSplit | None = None) -> DualEncoder:
        """A model for ``split``'s inputs (default: the training split; the old model may read other features)."""
        torch.manual_seed(seed)
        vocab = len(self.data.text) if self.data.text.kind == "ids" else None
        return build_dual_encoder(model_cfg, split or self.train, vocab).to(self.device)

    # ------------------------------------------------------------------ old model
    def _old_model(self) -> tuple[DualEncoder, MomentSplit, MomentSplit]:
        """The frozen old model and the train/test splits encoded with the old model's own text input."""
        old_cfg = self.compat["old"]
        model_cfg = _merged(self.compat["model"], old_cfg.get("model"))
        # the old model may read another feature backbone's clips of the same videos (compat.old.features)
        train, test = old_feature_view(self.train, old_cfg.get("features")), old_feature_view(self.test, old_cfg.get("features"))
        plan = self.old_plan
        if plan.checkpoint is not None:
            state = read_checkpoint(plan.checkpoint)
            if state.kind != "compat_old":
                raise GroundingError(f"{plan.checkpoint} is not an old model written by tools/train_compat.py "
                                     "(checkpoints/old.pt)")
            model_cfg = state.extras["model_config"]
            if state.text != self.data.text.state():  # another vocabulary: give the old model its own token ids
                text = build_text_input(self.cfg.get("text") or {"input": "vocab"})
                text.load_state(state.text or {})
                max_words = data_max_words(self.cfg)
                recs = {name: [r for r in self.data.records(name) if r.windows] for name in (self.splits.train, self.test_name)}
                train = train.with_words(*encode_words(recs[self.splits.train], text, max_words))
                test = test.with_words(*encode_words(recs[self.test_name], text, max_words))
            vocab = len(state.text["words"]) if "words" in (state.text or {}) else None
            model = build_dual_encoder(model_cfg, train, vocab).to(self.device)
            try:
                model.load_state_dict(state.model)
            except RuntimeError as err:
                raise GroundingError(f"{plan.checkpoint} does not fit this data (feature dim or vocabulary): "
                                     f"{str(err).splitlines()[0]}") from err
            log.info("old model loaded from %s", plan.checkpoint)
            self.old_queries = int(state.extras.get("train_queries", 0))
        else:
            keep = plan.subset(train.num_queries)
            count = len(keep)
            subset = train.select(keep)
            settings = replace(TrainSettings.from_config(_merged(self.compat["train"], old_cfg.get("train"))), seed=plan.seed)
            log.info("old model: %d of %d training queries (%.0f %%), %d epochs, dim %s",
                     count, train.num_queries, 100 * plan.train_fraction, settings.epochs, model_cfg.get("dim"))
            model = self._new_model(model_cfg, settings.seed, train)
            train_dual_encoder(model, subset, settings, self.device, writer=self.writer, tag="old",
                               on_epoch=self._epoch_probe(model, None, test))
            save_checkpoint(Checkpoint(model.state_dict(), to_plain(self.cfg), kind="compat_old", text=self.data.text.state(),
                                       extras={"model_config": model_cfg, "train_queries": count}),
                            self.work_dir / "checkpoints" / "old.pt")
            self.old_queries = count
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval(), train, test

    # ------------------------------------------------------------------ evaluation helpers
    def _epoch_probe(self, model: DualEncoder, old_test: SplitEmbeddings | None, test: MomentSplit):
        """Per-epoch R@1 on the test split for the logs: self, and cross when an old gallery exists."""
        if not self.compat["eval"].get("every_epoch", True):
            return None
        batch = int(self.compat["eval"].get("batch_size", 256))
        targets = self.relevant

        def probe(epoch: int) -> dict[str, float]:
            emb = embed_split(model, test, self.device, batch)
            out = {"self_R1": retrieve(emb.sentences.numpy(), emb.moments.numpy(), targets, (1,)).metrics["R@1"]}
            if old_test is not None:
                out["cross_R1"] = retrieve(emb.sentences.numpy(), old_test.moments.numpy(), targets, (1,)).metrics["R@1"]
            return out

        return probe

    # ------------------------------------------------------------------ one method
    def _adapter(self, new_dim: int, old_dim: int, seed: int) -> ForwardAdapter:
        """The forward adapter old -> new, initialised from ``seed`` (the same weights whenever it is made)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ForwardAdapter(old_dim, new_dim, int(self.compat["adapter"].get("hidden", 256))).to(self.device)

    def _run_method(self, name: str, old_train: SplitEmbeddings, old_test: SplitEmbeddings, old_hits: np.ndarray,
                    orders: dict[str, np.ndarray], fractions: list[float], old_temperature: float) -> MethodResult:
        """Train one new model (and its adapter) and evaluate it; per-query outcomes are kept for intervals."""
        spec = self.compat["methods"][name]
        adapter_cfg = self.compat["adapter"]
        settings = TrainSettings.from_config(self.compat["train"])
        start = time.perf_counter()
        model = self._new_model(self.compat["model"], settings.seed)
        if model.embed_dim != old_train.moments.shape[1]:
            raise GroundingError(f"new embed_dim {model.embed_dim} differs from the old model's "
                                 f"{old_train.moments.shape[1]}; compatibility needs one shared dim "
                                 "(compat.old.model.embed_dim)")
        loss = build_compat_loss(spec.get("loss"), spec.get("params"))
        if loss is not None:
            loss.to(self.device)
            loss.prepare(OldReference(old_train.moments, old_train.sentences, self.train.query_moment,
                                      old_temperature).to(self.device))
        joint = spec.get("forward") == "joint"
        uses_adapter = joint or name in (adapter_cfg.get("apply_to") or [])
        forward_params = {k: adapter_cfg[k] for k in ("temperature", "align_weight", "contrast_weight")}
        # a joint adapter trains with the model; a post-hoc one (BiCT) is built after training, so that making
        # it never moves the training's random stream: bict's new model is bct's, exactly
        adapter = self._adapter(model.embed_dim, old_train.moments.shape[1], settings.seed) if joint else None
        terms = CompatTerms(loss, float(spec.get("weight", 1.0)), old_train.moments, old_train.sentences,
                            adapter if joint else None, float(spec.get("forward_weight", 1.0)), forward_params)
        log.info("new model '%s': loss %s%s", name, spec.get("loss"), ", forward adapter trained jointly" if joint else "")
        train_dual_encoder(model, self.train, settings, self.device, terms, self.writer, tag=name,
                           on_epoch=self._epoch_probe(model, old_test, self.test))
        batch = int(self.compat["eval"].get("batch_size", 256))
        new_test = embed_split(model, self.test, self.device, batch)
        queries, targets = new_test.sentences.numpy(), self.relevant
        old_gallery, new_gallery = old_test.moments.numpy(), new_test.moments.numpy()
        self_ret, cross_ret = retrieve(queries, new_gallery, targets), retrieve(queries, old_gallery, targets)
        curve_flips: dict[str, list[np.ndarray]] = {order: [] for order in orders}
        curves = {order: hot_refresh_curve(queries, old_gallery, new_gallery, targets, perm, fractions, old_hits,
                                           flips=curve_flips[order])
                  for order, perm in orders.items()}
        per_query = {"self_hit": self_ret.hits, "self_ap": self_ret.ap, "cross_hit": cross_ret.hits,
                     "cross_ap": cross_ret.ap, "flip_cross": old_hits & ~cross_ret.hits,
                     **{f"curve_flips/{order}": np.mean(flips, 0) for order, flips in curve_flips.items()}}
        self.embeddings.update({f"{name}/queries": queries, f"{name}/gallery": new_gallery})
        adapted_cross = None
        if uses_adapter and adapter is None:
            adapter = self._adapter(model.embed_dim, old_train.moments.shape[1], settings.seed)
        if adapter is not None:
            new_train = embed_split(model, self.train, self.device, batch)
            history = fit_adapter(adapter, old_train.moments, new_train.moments, new_train.sentences,
                                  self.train.query_moment, epochs=int(adapter_cfg.get("epochs", 30)),
                                  lr=float(adapter_cfg.get("lr", 1e-3)), batch_size=int(adapter_cfg.get("batch_size", 256)),
                                  weight_decay=float(adapter_cfg.get("weight_decay", 0.0)), seed=settings.seed,
                                  **forward_params)
            for epoch, value in enumerate(history, 1):
                self.writer.add_scalar(f"{name}/adapter_loss", value, epoch)
            with torch.no_grad():
                adapted = adapter(old_test.moments.to(self.device)).cpu().numpy()
            self.embeddings[f"{name}/adapted"] = adapted
            adapted_ret = retrieve(queries, adapted, targets)
            adapted_cross = adapted_ret.metrics
            per_query.update(adapted_hit=adapted_ret.hits, adapted_ap=adapted_ret.ap)
            for order, perm in orders.items():
                curves[order + ADAPTED] = hot_refresh_curve(queries, adapted, new_gallery, targets, perm, fractions, old_hits)
            log.info("%s: forward adapter (%d epochs, loss %.3f -> %.3f): cross R@1 %.2f -> adapted %.2f", name,
                     len(history), history[0], history[-1], cross_ret.metrics["R@1"], adapted_cross["R@1"])
        extras = {"method": name, "model_config": self.compat["model"],
                  "adapter": adapter.state_dict() if adapter else None}
        save_checkpoint(Checkpoint(model.state_dict(), to_plain(self.cfg), kind="compat_new", text=self.data.text.state(),
                                   extras=extras), self.work_dir / "checkpoints" / f"new_{name}.pt")
        result = MethodResult(name, self_ret.metrics, cross_ret.metrics, adapted_cross,
                              negative_flip_rate(old_hits, cross_ret.hits), negative_flip_rate(old_hits, self_ret.hits),
                              curves, time.perf_counter() - start, per_query)
        for key, metrics in (("self", result.new_self), ("cross", result.cross), ("adapted_cross", result.adapted_cross)):
            for metric, value in (metrics or {}).items():
                self.writer.add_scalar(f"final/{key}/{metric}", value, list(self.compat["run"]).index(name))
        for order, rows in curves.items():
            for row in rows:
                self.writer.add_scalar(f"hot_refresh_{order}/{name}/R1", row["R@1"], round(100 * row["fraction"]))
                self.writer.add_scalar(f"hot_refresh_{order}/{name}/NFR", row["NFR"], round(100 * row["fraction"]))
        log.info("%s done in %.0f s: self R@1 %.2f, cross R@1 %.2f, NFR cross %.2f, mean NFR along the curve %s",
                 name, result.seconds, result.new_self["R@1"], result.cross["R@1"], result.nfr_cross,
                 ", ".join(f"{o} {result.mean_nfr(o):.2f}" for o in orders))
        return result

    # ------------------------------------------------------------------ the study
    def run(self, command: str | None = None) -> StudyResult:
        start = time.perf_counter()
        seed_everything(int(self.compat["train"].get("seed", 0)))
        self._load_data()
        old_model, old_train_split, old_test_split = self._old_model()
        batch = int(self.compat["eval"].get("batch_size", 256))
        old_train = embed_split(old_model, old_train_split, self.device, batch)
        old_test = embed_split(old_model, old_test_split, self.device, batch)
        old_ret = retrieve(old_test.sentences.numpy(), old_test.moments.numpy(), self.relevant)
        log.info("old self-test on %s: %s", self.test_name, ", ".join(f"{k} {v:.2f}" for k, v in old_ret.metrics.items()))
        backfill = self.compat["backfill"]
        steps = int(backfill.get("steps", 10))
        fractions = [i / steps for i in range(steps + 1)]
        classifier = self._uncertainty_classifier(old_train)
        orders = {kind: backfill_order(kind, old_test.moments.numpy(), int(backfill.get("seed", 0)),
                                       backfill.get("uncertainty", "entropy"), float(backfill.get("temperature", 0.05)),
                                       classifier)
                  for kind in backfill.get("orders", ["random"])}
        self.embeddings = {"old_train_moments": old_train.moments.numpy(), "old_queries": old_test.sentences.numpy(),
                           "old_gallery": old_test.moments.numpy(), "query_moment": self.test.query_moment.numpy(),
                           "moment_video": self.test.moment_video.numpy(), "relevant": np.asarray(self.relevant)}
        methods = {}
        for i, name in enumerate(self.compat["run"]):
            log.info("=== method %d/%d: %s", i + 1, len(self.compat["run"]), name)
            methods[name] = self._run_method(name, old_train, old_test, old_ret.hits, orders, fractions,
                                             old_model.temperature)
        study = StudyResult(old_ret.metrics, methods, list(orders), fractions, self.old_queries,
                            self.test.num_queries, self.test.num_moments, time.perf_counter() - start,
                            {"hit": old_ret.hits, "ap": old_ret.ap}, float(np.asarray(self.relevant).sum(1).mean())
                            if np.asarray(self.relevant).ndim == 2 else 1.0)
        self._write(study, command)
        return study

    def _uncertainty_classifier(self, old_train: SplitEmbeddings) -> np.ndarray | None:
        """The old classifier that rates the old gallery for uncertainty-first backfilling:
        ``compat.backfill.classifier: train`` (RACT: the old model's classifier, here BCT's rows = old
        embeddings of the training moments) or ``gallery`` (ours: the old gallery itself)."""
        source = self.compat["backfill"].get("classifier", "train")
        if source not in ("train", "gallery"):
            raise GroundingError(f"compat.backfill.classifier must be 'train' or 'gallery', not '{source}'")
        return old_train.moments.numpy() if source == "train" else None

    def _write(self, study: StudyResult, command: str | None) -> None:
        # every test embedding, so that other evaluation regimes (gallery size, relevance) and seeds can be
        # compared later without training again (grounding.studies.compat_regimes)
        np.savez_compressed(self.work_dir / "embeddings.npz", **self.embeddings)
        plot_hot_refresh(study, self.work_dir / "hot_refresh.png")
        study_summary(study, command).write(self.work_dir)
        self.session.close()
        for claim in check_claims(study):
            log.info("claim: %s -> %s (%s)", claim.text, claim.verdict, claim.detail)


def run_study(cfg: DictConfig, work_dir: str | Path, overwrite: bool = False, command: str | None = None) -> StudyResult:
    return CompatStudy(cfg, work_dir, overwrite).run(command)


__all__ = ["CompatStudy", "run_study"]
