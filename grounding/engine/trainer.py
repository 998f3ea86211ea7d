"""The training loop behind ``tools/train_grounding.py``.

One epoch = one pass over the training split. Every ``train.eval_every`` epochs the model is
evaluated on the selection split (``data.val_split``, or the test split when the dataset has no
validation split, which the log says); ``checkpoints/last.pt`` is written every epoch and
``checkpoints/best.pt`` when ``train.best_metric`` improves. At the end the chosen model predicts
every evaluation split: ``predictions_<split>.jsonl`` and ``metrics.json``.
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
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler
from tqdm import tqdm

from grounding.api.provenance import feature_provenance
from grounding.config import save_config, to_plain
from grounding.data.build import DataBundle
from grounding.data.dataset import batch_to, collate
from grounding.data.synthetic import SyntheticSpec, write_synthetic
from grounding.data.tensorized import TensorizedSplit
from grounding.engine.checkpoint import load_checkpoint, save_atomic
from grounding.engine.guards import NonFiniteLossGuard
from grounding.engine.inference import compute_metrics, forward_batch, predict
from grounding.engine.runtime import (
    DistInfo,
    gather_objects,
    init_distributed,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
)
from grounding.engine.schedule import warmup_decay
from grounding.engine.workdir import prepare_work_dir
from grounding.errors import GroundingError
from grounding.eval.predictions import write_predictions
from grounding.losses import build_criterion
from grounding.models import build_model
from grounding.models.decoding import DecodeConfig

log = logging.getLogger("grounding")


def ensure_synthetic_data(cfg: DictConfig) -> None:
    """Configs with a ``data.synthetic`` section get their benchmark written on first use."""
    spec = cfg.data.get("synthetic")
    if spec:
        write_synthetic(cfg.data.root, SyntheticSpec(**to_plain(spec)), progress=False)


def setup_logging(work_dir: Path | None, is_main: bool) -> None:
    handlers: list[logging.Handler] = []
    if is_main:
        handlers.append(logging.StreamHandler())
        if work_dir is not None:
            handlers.append(logging.FileHandler(work_dir / "train.log"))
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", handlers=handlers or [logging.NullHandler()], force=True)


def build_model_for(cfg: DictConfig, data: DataBundle) -> nn.Module:
    text = data.text
    if text.kind == "ids":
        pretrained = text.pretrained_embeddings(cfg.model.get("word_dim", 300), cfg.train.seed)  # type: ignore[attr-defined]
        return build_model(cfg.model, vocab_size=len(text), pretrained_words=pretrained)  # type: ignore[arg-type]
    probe = text.encode(data.records(cfg.data.get("train_split", "train"))[0], 4)
    return build_model(cfg.model, token_feat_dim=probe.shape[1])


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16 autocast on CUDA where supported (fp16 otherwise); full precision on the CPU."""
    if device.type != "cuda" or precision == "fp32":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def maybe_compile(model: nn.Module, cfg: DictConfig) -> Any:
    """``train.compile=true``: a torch.compile'd forward; any part that fails to compile runs eagerly."""
    if not cfg.train.get("compile", False):
        return None
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True  # fall back to eager instead of failing the run
    try:
        return torch.compile(model)
    except Exception as err:  # e.g. no compiler toolchain on this machine
        log.warning("train.compile: torch.compile is unavailable (%s); training eagerly", err)
        return None


def decode_config(cfg: DictConfig) -> DecodeConfig:
    return DecodeConfig(**to_plain(cfg.get("decode") or {}))


def make_loader(dataset, cfg: DictConfig, dist_info: DistInfo, train: bool, epoch: int = 0) -> DataLoader:
    batch_size = int(cfg.train.batch_size) if train else int(cfg.train.get("eval_batch_size", 128))
    if dist_info.enabled:
        batch_size = max(1, batch_size // dist_info.world_size)
        sampler = DistributedSampler(dataset, dist_info.world_size, dist_info.rank, shuffle=train, seed=cfg.train.seed)
        sampler.set_epoch(epoch)
    elif train:
        generator = torch.Generator().manual_seed(int(cfg.train.seed) * 1000 + epoch)  # same order after resume
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    workers = int(cfg.train.get("num_workers", 0))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=workers,
                      pin_memory=torch.cuda.is_available(), drop_last=False, persistent_workers=False)


class ModelWithLoss(nn.Module):
    """Model + criterion as one module, so DDP sees every parameter the losses touch (the shared
    embedding space is used by the alignment losses, outside the model's own forward)."""

    def __init__(self, model: nn.Module, criterion: nn.Module, compiled: Any = None) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.compiled = compiled  # torch.compile'd forward of ``model`` (same parameters), or None

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = forward_batch(self.compiled if self.compiled is not None else self.model, batch)
        return self.criterion(outputs, batch, self.model)


class Trainer:
    def __init__(self, cfg: DictConfig, work_dir: str | Path, resume: bool = False, overwrite: bool = False) -> None:
        self.cfg = cfg
        device_kind = "cuda" if cfg.train.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
        self.dist = init_distributed(device_kind)
        self.work_dir = Path(work_dir)
        if self.dist.is_main:
            prepare_work_dir(self.work_dir, resume, overwrite)
        if self.dist.enabled:
            torch.distributed.barrier()
        setup_logging(self.work_dir, self.dist.is_main)
        self.device = select_device(cfg.train.device, self.dist)
        torch.set_flush_denormal(True)  # tiny optimizer statistics otherwise become slow denormals on CPUs
        if cfg.train.get("num_threads"):
            torch.set_num_threads(int(cfg.train.num_threads))  # on a shared CPU, fewer threads avoid thrashing
        seed_everything(int(cfg.train.seed) + self.dist.rank, bool(cfg.train.get("deterministic", False)))
        if self.dist.is_main:
            ensure_synthetic_data(cfg)
        if self.dist.enabled:
            torch.distributed.barrier()
        self.resume_state = load_checkpoint(self.work_dir / "checkpoints" / "last.pt") if resume else None
        if self.resume_state is not None:
            saved = self.resume_state["config"]
            if to_plain(cfg) != saved:
                log.warning("--resume: the config differs from the saved one; continuing with the saved config")
            self.cfg = cfg = OmegaConf.create(saved)
        elif self.dist.is_main:
            save_config(cfg, self.work_dir / "config.yaml")
        self.data = DataBundle(cfg, text_state=self.resume_state["text"] if self.resume_state else None)
        self.train_split = cfg.data.get("train_split", "train")
        self.eval_splits = list(cfg.data.get("eval_splits") or [cfg.data.get("test_split", "test")])
        self.val_split = cfg.data.get("val_split")
        self.select_split = self.val_split or self.eval_splits[0]
        self.model = build_model_for(cfg, self.data).to(self.device)
        self.criterion = build_criterion(cfg.get("loss"))
        self.autocast = autocast_dtype(self.device, cfg.train.get("precision", "auto"))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)
        self.train_model: nn.Module = ModelWithLoss(self.model, self.criterion, maybe_compile(self.model, cfg))
        if self.dist.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(
                self.train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        # fused AdamW: one kernel for all parameters instead of a loop of small ops (12 % of a CPU step)
        self.fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=float(cfg.train.lr), fused=self.fused,
                                           weight_decay=float(cfg.train.get("weight_decay", 0.01)))
        steps_per_epoch = math.ceil(len(self.data.records(self.train_split)) / int(cfg.train.batch_size))
        total = steps_per_epoch * int(cfg.train.epochs)
        warmup = int(float(cfg.train.get("warmup_epochs", 1)) * steps_per_epoch)
        self.scheduler = warmup_decay(self.optimizer, total, warmup, cfg.train.get("decay", "cosine"))
        self.writer = None
        if self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.work_dir / "tb"))
        self.epoch, self.step, self.best = 0, 0, -math.inf
        self.last_eval: tuple[str, int, list[dict[str, Any]], dict[str, Any] | None] | None = None
        self._tensorized: dict[str, TensorizedSplit] = {}
        if self.resume_state is not None:
            self._restore(self.resume_state)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "step": self.step, "best": self.best, "rng": rng_state(),
            "config": to_plain(self.cfg), "text": self.data.text.state(),
            "feature_provenance": feature_provenance(self.cfg),  # how encode_video reproduces the features
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        set_rng_state(state["rng"])
        log.info("resumed from epoch %d (step %d)", self.epoch, self.step)

    # ------------------------------------------------------------------ batches
    def use_fast_data(self) -> bool:
        """``train.fast_data``: auto (tensorized whenever the clip count is fixed), true, or false."""
        choice = self.cfg.train.get("fast_data", "auto")
        if choice == "auto":
            return bool(self.cfg.data.get("num_clips"))
        return bool(choice)

    def batches(self, split: str, train: bool):
        """An iterable of batches of ``split``: tensor-assembled from memory when possible, else a DataLoader."""
        if not self.use_fast_data():
            return make_loader(self.data.dataset(split), self.cfg, self.dist, train=train, epoch=self.epoch)
        if split not in self._tensorized:
            self._tensorized[split] = TensorizedSplit(self.data.dataset(split), self.device)
        size = int(self.cfg.train.batch_size) if train else int(self.cfg.train.get("eval_batch_size", 128))
        if self.dist.enabled:
            size = max(1, size // self.dist.world_size)
        return ReiterableBatches(lambda: self._tensorized[split].batches(
            size, shuffle=train, seed=int(self.cfg.train.seed) * 1000 + self.epoch,
            rank=self.dist.rank, world=self.dist.world_size), len(self._tensorized[split]), size, self.dist.world_size)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        epochs, eval_every = int(cfg.train.epochs), int(cfg.train.get("eval_every", 1))
        figure_every = int(cfg.train.get("figure_every", 0))
        best_metric = cfg.train.get("best_metric", "R1@0.5")
        if self.val_split is None:
            log.info("no validation split for this dataset: best.pt is selected on '%s' (optimistic); the final "
                     "numbers come from the last epoch's model", self.select_split)
        log.info("train: %d queries | %s: %d | model %s, %.2fM parameters | device %s%s",
                 len(self.data.records(self.train_split)), self.select_split, len(self.data.records(self.select_split)),
                 cfg.model.get("name"), sum(p.numel() for p in self.model.parameters()) / 1e6, self.device,
                 f" x{self.dist.world_size}" if self.dist.enabled else "")
        while self.epoch < epochs:
            self._train_epoch()
            self.epoch += 1
            if self.epoch % eval_every == 0 or self.epoch == epochs:
                # drawing the figures costs more than the evaluation itself on a CPU: every figure_every epochs
                figures = self.epoch == epochs or (figure_every > 0 and self.epoch % figure_every == 0)
                metrics = self.evaluate(self.select_split, figures=figures)
                if self.dist.is_main:
                    value = metrics.get(best_metric)
                    if value is None:
                        raise GroundingError(f"train.best_metric '{best_metric}' is not among {sorted(metrics)}")
                    log.info("epoch %d %s: %s", self.epoch, self.select_split, _brief(metrics))
                    if value > self.best:
                        self.best = value
                        save_atomic(self._state(), self.work_dir / "checkpoints" / "best.pt")
            if self.dist.is_main:
                save_atomic(self._state(), self.work_dir / "checkpoints" / "last.pt")
        return self.finish()

    def _train_epoch(self) -> None:
        cfg = self.cfg
        loader = self.batches(self.train_split, train=True)
        self.train_model.train()
        clip = float(cfg.train.get("grad_clip", 1.0))
        log_every = int(cfg.train.get("log_every", 20))
        # every step on the CPU; on a GPU every log_every steps, so that the step never waits for the device
        guard = NonFiniteLossGuard(1 if self.device.type == "cpu" else log_every)
        start, seen = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}", disable=not self.dist.is_main,
                   dynamic_ncols=True, mininterval=1.0)
        for batch in bar:
            batch = batch_to(batch, self.device)
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                loss, terms = self.train_model(batch)
            guard.add(self.epoch + 1, self.step, batch["qid"], loss, terms)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip, foreach=self.fused)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            seen += len(batch["qid"])
            if self.step % log_every == 0 and self.writer is not None:
                for name, value in terms.items():
                    self.writer.add_scalar(f"loss/{name}", float(value), self.step)
                self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        guard.check()
        elapsed = time.perf_counter() - start
        if self.writer is not None:
            self.writer.add_scalar("train/queries_per_s", seen * self.dist.world_size / max(elapsed, 1e-9), self.epoch + 1)
            log.info("epoch %d: %.1f s, %.0f queries/s, loss %.4f", self.epoch + 1, elapsed,
                     seen * self.dist.world_size / max(elapsed, 1e-9), float(loss.detach()))

    # ------------------------------------------------------------------ evaluation
    def predict_split(self, split: str) -> list[dict[str, Any]]:
        loader = self.batches(split, train=False)
        preds = predict(self.model, loader, self.device, decode_config(self.cfg), self.autocast)
        preds = gather_objects(preds, self.dist)
        unique = {str(p["qid"]): p for p in preds}  # DistributedSampler pads with repeats
        order = [str(r.qid) for r in self.data.records(split)]
        return [unique[q] for q in order if q in unique]

    def evaluate(self, split: str, figures: bool = False) -> dict[str, Any]:
        preds = self.predict_split(split)
        self.last_eval = (split, self.epoch, preds, None)  # finish() reuses it (on every rank) instead of predicting again
        if not self.dist.is_main:
            return {}
        dataset = self.data.dataset(split)
        metrics = compute_metrics(preds, dataset.records, self.cfg.data.get("dataset", "native"), dataset.tags)
        self.last_eval = (split, self.epoch, preds, metrics)
        if self.writer is not None:
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not name.startswith("num_"):
                    self.writer.add_scalar(f"{split}/{name}", value, self.epoch)
            if figures:
                self._figures(split, preds)
        return metrics

    def _figures(self, split: str, preds: list[dict[str, Any]]) -> None:
        from grounding.engine.visualize import (  # matplotlib: imported only when drawing
            query_figure,
            stage_curves,
        )

        dataset = self.data.dataset(split)
        count = min(int(self.cfg.train.get("num_figures", 4)), len(dataset))
        if count == 0 or self.writer is None:
            return
        batch = batch_to(collate([dataset[i] for i in range(count)]), self.device)
        self.model.eval()
        with torch.no_grad():
            outputs = forward_batch(self.model, batch)
        self.model.train()
        by_qid = {str(p["qid"]): p for p in preds}
        for i in range(count):
            rec = dataset.records[i]
            pred = by_qid.get(str(rec.qid), {}).get("pred_relevant_windows", [])
            fig = query_figure(rec.query, float(rec.duration), rec.windows, pred,
                               stage_curves(outputs, i, int(batch["num_clips"][i])))
            self.writer.add_figure(f"{split}/query_{i}", fig, self.epoch)

    def finish(self) -> dict[str, Any]:
        """Predict every evaluation split with the chosen model; write predictions and ``metrics.json``."""
        chosen = "last"
        best_path = self.work_dir / "checkpoints" / "best.pt"
        if self.val_split is not None and best_path.is_file():
            self.model.load_state_dict(load_checkpoint(best_path, self.device)["model"])
            chosen = "best"
        results: dict[str, Any] = {"checkpoint": chosen, "epochs": self.epoch, "selected_on": self.select_split}
        for split in self.eval_splits:
            last = self.last_eval
            if chosen == "last" and last is not None and last[:2] == (split, self.epoch):
                preds, metrics = last[2], last[3]  # the model was just evaluated on this split
            else:
                preds = self.predict_split(split)
                metrics = None
            if self.dist.is_main:
                write_predictions(preds, self.work_dir / f"predictions_{split}.jsonl")
                dataset = self.data.dataset(split)
                results[split] = metrics or compute_metrics(preds, dataset.records, self.cfg.data.get("dataset", "native"),
                                                            dataset.tags)
        if self.dist.is_main:
            (self.work_dir / "metrics.json").write_text(json.dumps(results, indent=1))
            if self.writer is not None:
                self.writer.close()
        return results


class ReiterableBatches:
    """Batches that can be iterated again each epoch and have a ``len`` (for progress bars), like a DataLoader."""

    def __init__(self, make, num_items: int, batch_size: int, world: int) -> None:
        self.make, self.length = make, math.ceil(math.ceil(num_items / world) / batch_size)

    def __iter__(self):
        return iter(self.make())

    def __len__(self) -> int:
        return self.length


def _brief(metrics: dict[str, Any], keys: tuple[str, ...] = ("R1@0.5", "R1@0.7", "mIoU", "MR-full-R1@0.5", "MR-full-mAP")) -> str:
    return ", ".join(f"{k} {metrics[k]:.2f}" for k in keys if k in metrics)


def summary(results: dict[str, Any], work_dir: Path) -> str:
    """The one screen printed at the end of a run."""
    lines = [f"run finished: {results['epochs']} epochs, final numbers from the {results['checkpoint']} model"]
    for split, metrics in results.items():
        if isinstance(metrics, dict):
            lines.append(f"  {split}: {_brief(metrics, ('R1@0.3', 'R1@0.5', 'R1@0.7', 'R5@0.5', 'mIoU', 'MR-full-R1@0.5', 'MR-full-R1@0.7', 'MR-full-mAP'))}")
            subsets = sorted({k.split('/')[0] for k in metrics if '/' in k})
            for tag in subsets:
                lines.append(f"    {tag:>9}: R1@0.5 {metrics.get(f'{tag}/R1@0.5', float('nan')):.2f}, "
                             f"R1@0.7 {metrics.get(f'{tag}/R1@0.7', float('nan')):.2f} ({metrics.get(f'{tag}/num_queries', 0)} queries)")
    lines.append(f"  outputs: {work_dir}/metrics.json, predictions_<split>.jsonl, checkpoints/")
    lines.append(f"  TensorBoard: tensorboard --logdir {work_dir}/tb")
    return "\n".join(lines)
