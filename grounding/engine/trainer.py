"""The training loop behind ``tools/train_grounding.py``: fit, evaluate, finish.

One epoch = one pass over the training split. Every ``train.eval_every`` epochs the model is
evaluated on the selection split (``data.val_split``, or the test split when the dataset has no
validation split, which the log says); ``checkpoints/last.pt`` is written every epoch and
``checkpoints/best.pt`` when ``train.best_metric`` improves. At the end the chosen model predicts
every evaluation split: ``predictions_<split>.jsonl`` and ``metrics.json``.

Set-up lives in ``engine/run.py`` (device, threads, seeds, logging, TensorBoard), the step in
``engine/step.py``, batches in ``engine/batches.py``; this file only orders them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from grounding.config import save_config, to_plain
from grounding.data.build import DataBundle
from grounding.data.dataset import collate
from grounding.data.provenance import feature_provenance
from grounding.data.settings import dataset_name
from grounding.engine.batches import BatchSource
from grounding.engine.guards import NonFiniteLossGuard
from grounding.engine.run import Run
from grounding.engine.runtime import gather_objects, rng_state, set_rng_state
from grounding.engine.settings import Splits, TrainSettings
from grounding.engine.step import TrainStep, make_optimizer
from grounding.engine.workdir import prepare_work_dir
from grounding.errors import GroundingError
from grounding.eval.evaluate import compute_metrics, has_ground_truth, headline
from grounding.eval.predictions import Prediction, write_predictions
from grounding.inference import Checkpoint, load_for_inference, predict, read_checkpoint, save_checkpoint
from grounding.inference.loading import load_weights
from grounding.losses import build_criterion
from grounding.losses.compat import LossContext, loss_section
from grounding.models import build_model_for_text
from grounding.models.decoding import DecodeConfig
from grounding.schedule import warmup_decay

log = logging.getLogger("grounding")


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``train.compile=true``: a torch.compile'd forward; any part that fails to compile runs eagerly."""
    if not enabled:
        return model
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # fall back to eager instead of failing the run
    try:
        return torch.compile(model)
    except Exception as err:  # e.g. no compiler toolchain on this machine
        log.warning("train.compile: torch.compile is unavailable (%s); training eagerly", err)
        return model


def resolve_run_config(cfg: DictConfig, work_dir: Path, resume: bool, overwrite: bool
                       ) -> tuple[DictConfig, Checkpoint | None]:
    """The run's one config, decided before anything reads it: with ``--resume`` the saved one (device, seed,
    threads and all), else ``cfg``. Returns it with the checkpoint to resume from (None for a new run)."""
    if not resume:
        return cfg, None
    prepare_work_dir(work_dir, resume, overwrite)  # read-only for a resume: says what to do when there is no run
    state = read_checkpoint(work_dir / "checkpoints" / "last.pt")
    if to_plain(cfg) != state.config:
        log.warning("--resume: the config differs from the saved one; continuing with the saved config")
    return OmegaConf.create(state.config), state


class Trainer:
    def __init__(self, cfg: DictConfig, work_dir: str | Path, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, resume_from: Checkpoint | None = None) -> None:
        """``resume_from``: the checkpoint ``resolve_run_config`` already read (then ``cfg`` is its config)."""
        resume = resume or resume_from is not None
        if resume_from is None:
            cfg, resume_from = resolve_run_config(cfg, Path(work_dir), resume, overwrite)
        self.run = Run.start(TrainSettings.from_config(cfg), work_dir, resume, overwrite)
        self.dist, self.device, self.work_dir = self.run.dist, self.run.device, Path(work_dir)
        self.progress = progress and self.dist.is_main
        self.dist.barrier()  # other ranks wait for rank 0, whose tool wrote the data first (grounding.synthetic.prepare)
        if resume_from is None and self.dist.is_main:
            save_config(cfg, self.work_dir / "config.yaml")
        self.cfg, self.settings, self.splits = cfg, TrainSettings.from_config(cfg), Splits.from_config(cfg)
        self.data = DataBundle(cfg, text_state=resume_from.text if resume_from else None)
        self.data.validate([self.splits.train, self.splits.select, *self.splits.evaluate], progress=self.progress)
        if not has_ground_truth(self.data.records(self.splits.select)):
            raise GroundingError(f"split '{self.splits.select}' has no ground-truth windows (hidden labels), so it cannot "
                                 "select best.pt; set data.val_split (or the first of data.eval_splits) to a labelled split")
        self.provenance = feature_provenance(cfg)
        self.model = build_model_for_text(cfg.model, self.data.text, self.settings.seed).to(self.device)
        context = LossContext(cfg, self.data, self.device, self.splits.train,
                              load_model=lambda path: load_for_inference(path, self.device))
        self.criterion = build_criterion(loss_section(cfg), context)
        self.train_model: nn.Module = maybe_compile(self.model, self.settings.compile)
        if self.dist.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        s = self.settings
        optimizer = make_optimizer(self.model.parameters(), s.lr, s.weight_decay, self.device)
        steps_per_epoch = math.ceil(len(self.data.records(self.splits.train)) / s.batch_size)
        scheduler = warmup_decay(optimizer, steps_per_epoch * s.epochs, int(s.warmup_epochs * steps_per_epoch), s.decay)
        # the loss is checked every step on the CPU; on a GPU every log_every steps, so a step never waits for it
        guard = NonFiniteLossGuard(1 if self.device.type == "cpu" else s.log_every)
        self.step = TrainStep(optimizer, self.device, s.grad_clip, self.run.autocast, scheduler, guard)
        self.source = BatchSource(s, self.dist, self.device)
        self.decode_cfg = DecodeConfig.from_config(cfg)
        self.epoch, self.best = 0, -math.inf
        self.last_eval: tuple[str, int, list[Prediction], dict[str, Any] | None] | None = None
        if resume_from is not None:
            self._restore(resume_from)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> Checkpoint:
        training = {**self.step.state_dict(), "epoch": self.epoch, "best": self.best, "rng": rng_state()}
        return Checkpoint(self.model.state_dict(), to_plain(self.cfg), text=self.data.text.state(),
                          feature_provenance=self.provenance,  # how Grounder.encode_video reproduces the features
                          compatible_with=self.criterion.compatible_with(), training=training)

    def _restore(self, checkpoint: Checkpoint) -> None:
        if checkpoint.training is None:
            raise GroundingError(f"{self.work_dir}/checkpoints/last.pt holds no training state to resume from; "
                                 "pass --overwrite to start again")
        load_weights(self.model, checkpoint, self.work_dir / "checkpoints" / "last.pt")
        self.step.load_state_dict(checkpoint.training)
        self.epoch, self.best = checkpoint.training["epoch"], checkpoint.training["best"]
        set_rng_state(checkpoint.training["rng"])
        log.info("resumed from epoch %d (step %d)", self.epoch, self.step.count)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        s, splits = self.settings, self.splits
        if splits.val is None:
            log.info("no validation split for this dataset: best.pt is selected on '%s' (optimistic); the final "
                     "numbers come from the last epoch's model", splits.select)
        log.info("train: %d queries | %s: %d | model %s, %.2fM parameters | device %s%s, %d CPU threads",
                 len(self.data.records(splits.train)), splits.select, len(self.data.records(splits.select)),
                 self.cfg.model.get("name"), sum(p.numel() for p in self.model.parameters()) / 1e6, self.device,
                 f" x{self.dist.world_size}" if self.dist.enabled else "", self.run.threads)
        while self.epoch < s.epochs:
            self._train_epoch()
            self.epoch += 1
            if self.epoch % s.eval_every == 0 or self.epoch == s.epochs:
                # drawing the figures costs more than the evaluation itself on a CPU: every figure_every epochs
                figures = self.epoch == s.epochs or (s.figure_every > 0 and self.epoch % s.figure_every == 0)
                metrics = self.evaluate(splits.select, figures=figures)
                if self.dist.is_main:
                    value = metrics.get(s.best_metric)
                    if value is None:
                        raise GroundingError(f"train.best_metric '{s.best_metric}' is not among {sorted(metrics)}")
                    log.info("epoch %d %s: %s", self.epoch, splits.select, brief(metrics))
                    if value > self.best:
                        self.best = value
                        save_checkpoint(self._checkpoint(), self.work_dir / "checkpoints" / "best.pt")
            if self.dist.is_main:
                save_checkpoint(self._checkpoint(), self.work_dir / "checkpoints" / "last.pt")
        return self.finish()

    def _train_epoch(self) -> None:
        s, writer = self.settings, self.run.writer
        batches = self.source.batches(self.data.dataset(self.splits.train), train=True, epoch=self.epoch)
        self.train_model.train()
        start, seen, loss = time.perf_counter(), 0, torch.zeros(())
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{s.epochs}", disable=not self.progress,
                   dynamic_ncols=True, mininterval=1.0)
        for batch in bar:
            batch = batch.to(self.device)
            loss, terms = self.step(lambda b=batch: self.criterion(self.train_model(b), b), batch.qid, self.epoch + 1)
            seen += len(batch)
            if self.step.count % s.log_every == 0 and writer is not None:
                for name, value in terms.items():
                    writer.add_scalar(f"loss/{name}", float(value), self.step.count)
                writer.add_scalar("train/lr", self.step.scheduler.get_last_lr()[0], self.step.count)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        self.step.guard.check()
        elapsed = time.perf_counter() - start
        rate = seen * self.dist.world_size / max(elapsed, 1e-9)
        if writer is not None:
            writer.add_scalar("train/queries_per_s", rate, self.epoch + 1)
            log.info("epoch %d: %.1f s, %.0f queries/s, loss %.4f", self.epoch + 1, elapsed, rate, float(loss.detach()))

    # ------------------------------------------------------------------ evaluation
    def predict_split(self, split: str) -> list[Prediction]:
        batches = self.source.batches(self.data.dataset(split), train=False)
        preds = gather_objects(predict(self.model, batches, self.device, self.decode_cfg, self.run.autocast), self.dist)
        unique = {str(p["qid"]): p for p in preds}  # DistributedSampler pads with repeats
        return [unique[q] for q in (str(r.qid) for r in self.data.records(split)) if q in unique]

    def _score(self, split: str, preds: list[Prediction]) -> dict[str, Any]:
        """Metrics of ``split``; a split whose labels are hidden (QVHighlights test) says so instead of zeros."""
        dataset = self.data.dataset(split)
        if not has_ground_truth(dataset.records):
            return {"num_queries": len(preds), "ground_truth": False}
        return compute_metrics(preds, dataset.records, dataset_name(self.cfg), dataset.tags)

    def evaluate(self, split: str, figures: bool = False) -> dict[str, Any]:
        """The flat headline metrics of ``split`` (every rank predicts; only the main one scores)."""
        preds = self.predict_split(split)
        self.last_eval = (split, self.epoch, preds, None)  # finish() reuses it (on every rank) instead of predicting again
        if not self.dist.is_main:
            return {}
        metrics = self._score(split, preds)
        self.last_eval = (split, self.epoch, preds, metrics)
        flat = headline(metrics)
        if self.run.writer is not None:
            for name, value in flat.items():
                if isinstance(value, int | float) and not name.startswith("num_"):
                    self.run.writer.add_scalar(f"{split}/{name}", value, self.epoch)
            if figures:
                self._figures(split, preds)
        return flat

    def _figures(self, split: str, preds: list[Prediction]) -> None:
        from grounding.engine.visualize import (  # matplotlib: imported only when drawing
            query_figure,
            stage_curves,
        )

        dataset = self.data.dataset(split)
        count = min(self.settings.num_figures, len(dataset))
        if count == 0:
            return
        batch = collate([dataset[i] for i in range(count)]).to(self.device)
        self.model.eval()
        with torch.no_grad():
            output = self.model(batch)
        self.model.train()
        by_qid = {str(p["qid"]): p for p in preds}
        for i in range(count):
            rec = dataset.records[i]
            pred = by_qid.get(str(rec.qid), {}).get("pred_relevant_windows", [])
            fig = query_figure(rec.query, float(rec.duration), rec.windows, pred,
                               stage_curves(output, i, int(batch.num_clips[i])))
            self.run.writer.add_figure(f"{split}/query_{i}", fig, self.epoch)

    def finish(self) -> dict[str, Any]:
        """Predict every evaluation split with the chosen model; write predictions and ``metrics.json``."""
        chosen = "last"
        best_path = self.work_dir / "checkpoints" / "best.pt"
        if self.splits.val is not None and best_path.is_file():
            load_weights(self.model, read_checkpoint(best_path, self.device), best_path)
            chosen = "best"
        results: dict[str, Any] = {"checkpoint": chosen, "epochs": self.epoch, "selected_on": self.splits.select,
                                   "parameters": sum(p.numel() for p in self.model.parameters())}
        for split in self.splits.evaluate:
            last = self.last_eval
            reuse = chosen == "last" and last is not None and last[:2] == (split, self.epoch)
            preds = last[2] if reuse else self.predict_split(split)  # type: ignore[index]
            if self.dist.is_main:
                write_predictions(preds, self.work_dir / f"predictions_{split}.jsonl")
                results[split] = (last[3] if reuse else None) or self._score(split, preds)  # type: ignore[index]
        if self.dist.is_main:
            (self.work_dir / "metrics.json").write_text(json.dumps(results, indent=1))
        self.run.close()
        return results


def brief(metrics: dict[str, Any], keys: tuple[str, ...] = ("R1@0.5", "R1@0.7", "mIoU", "MR-full-R1@0.5", "MR-full-mAP")) -> str:
    flat = headline(metrics)
    return ", ".join(f"{k} {flat[k]:.2f}" for k in keys if flat.get(k) is not None)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(results: dict[str, Any], work_dir: Path) -> str:
    """The one screen printed at the end of a run."""
    lines = [f"run finished: {results['epochs']} epochs, final numbers from the {results['checkpoint']} model"]
    for split, metrics in results.items():
        if isinstance(metrics, dict):
            lines.append(f"  {split}: {brief(metrics, ('R1@0.3', 'R1@0.5', 'R1@0.7', 'R5@0.5', 'mIoU', 'MR-full-R1@0.5', 'MR-full-R1@0.7', 'MR-full-mAP'))}")
            subsets = sorted({k.split('/')[0] for k in metrics if '/' in k})
            names = ("MR-full-mAP", "HL-min-Fair-mAP") if "brief" in metrics else ("R1@0.5", "R1@0.7")
            for tag in subsets:
                values = ", ".join(f"{n} {_number(metrics.get(f'{tag}/{n}'))}" for n in names)
                lines.append(f"    {tag:>9}: {values} ({int(metrics.get(f'{tag}/num_queries', 0))} queries)")
    lines.append(f"  outputs: {work_dir}/metrics.json, predictions_<split>.jsonl, checkpoints/")
    lines.append(f"  TensorBoard: tensorboard --logdir {work_dir}/tb")
    return "\n".join(lines)


def run_training(cfg: DictConfig, work_dir: str | Path, resume: bool = False, overwrite: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Train and evaluate one run; returns what ``metrics.json`` holds."""
    return Trainer(cfg, work_dir, resume=resume, overwrite=overwrite, progress=progress).fit()
