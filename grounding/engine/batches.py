"""Where a run's batches come from: tensors held in memory (``train.fast_data``) or a DataLoader."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from grounding.data.batch import Batch
from grounding.data.dataset import GroundingDataset, collate
from grounding.data.tensorized import TensorizedSplit
from grounding.engine.runtime import DistInfo
from grounding.engine.settings import TrainSettings


class ReiterableBatches:
    """Batches that can be iterated again each epoch and have a ``len`` (for progress bars), like a DataLoader."""

    def __init__(self, make: Callable[[], Iterable[Batch]], num_items: int, batch_size: int, world: int) -> None:
        self.make, self.length = make, math.ceil(math.ceil(num_items / world) / batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.make())

    def __len__(self) -> int:
        return self.length


def use_fast_data(settings: TrainSettings, num_clips: int | None) -> bool:
    """``train.fast_data``: auto (tensorized whenever the clip count is fixed), true, or false."""
    return bool(num_clips) if settings.fast_data == "auto" else bool(settings.fast_data)


class BatchSource:
    """Batches of any split of one run; a split's tensors are built once and kept."""

    def __init__(self, settings: TrainSettings, dist: DistInfo, device: torch.device) -> None:
        self.settings, self.dist, self.device = settings, dist, device
        self._tensorized: dict[int, TensorizedSplit] = {}

    def batches(self, dataset: GroundingDataset, train: bool, epoch: int = 0) -> Iterable[Batch]:
        s = self.settings
        size = s.batch_size if train else s.eval_batch_size
        if self.dist.enabled:
            size = max(1, size // self.dist.world_size)
        seed = s.seed * 1000 + epoch  # the same order after a resume
        if not use_fast_data(s, dataset.features.num_clips):
            return self._loader(dataset, size, train, seed, epoch)
        key = id(dataset)
        if key not in self._tensorized:
            self._tensorized[key] = TensorizedSplit(dataset, self.device)
        split = self._tensorized[key]
        return ReiterableBatches(lambda: split.batches(size, shuffle=train, seed=seed, rank=self.dist.rank,
                                                       world=self.dist.world_size), len(split), size, self.dist.world_size)

    def _loader(self, dataset: GroundingDataset, size: int, train: bool, seed: int, epoch: int) -> DataLoader:
        if self.dist.enabled:
            sampler = DistributedSampler(dataset, self.dist.world_size, self.dist.rank, shuffle=train, seed=self.settings.seed)
            sampler.set_epoch(epoch)
        elif train:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SequentialSampler(dataset)
        return DataLoader(dataset, batch_size=size, sampler=sampler, collate_fn=collate,
                          num_workers=self.settings.num_workers, pin_memory=torch.cuda.is_available())
