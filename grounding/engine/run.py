"""Setting up a run, the same way for training, the compatibility study, evaluation and benchmarks:
distributed process group, work dir, logging, device and precision, CPU threads, seeds, TensorBoard.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grounding.device import autocast_dtype, configure_threads, release_threads, select_device
from grounding.engine.runtime import DistInfo, init_distributed, seed_everything
from grounding.engine.settings import TrainSettings
from grounding.engine.workdir import prepare_work_dir

log = logging.getLogger("grounding")


def setup_logging(work_dir: Path | None, is_main: bool = True, log_name: str = "train.log") -> None:
    """INFO to the console and ``work_dir/<log_name>`` on the main process; warnings only elsewhere."""
    handlers: list[logging.Handler] = []
    if is_main:
        handlers.append(logging.StreamHandler())
        if work_dir is not None:
            handlers.append(logging.FileHandler(work_dir / log_name))
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", handlers=handlers or [logging.NullHandler()], force=True)


@dataclass
class Run:
    settings: TrainSettings
    dist: DistInfo
    device: torch.device
    autocast: torch.dtype | None
    threads: int
    work_dir: Path | None = None
    tensorboard: bool = True
    _writer: Any = None

    @property
    def writer(self) -> Any:
        """TensorBoard's SummaryWriter on the main process of a run with a work dir, else None; made on first
        use, so a run that fails its start-up checks leaves no ``tb/`` behind."""
        if self._writer is None and self.tensorboard and self.work_dir is not None and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.work_dir / "tb"))
        return self._writer

    @classmethod
    def start(cls, settings: TrainSettings, work_dir: str | Path | None = None, resume: bool = False,
              overwrite: bool = False, tensorboard: bool = True, log_name: str = "train.log") -> Run:
        dist = init_distributed(use_cuda=settings.device != "cpu" and torch.cuda.is_available())
        work = Path(work_dir) if work_dir is not None else None
        if work is not None and dist.is_main:
            prepare_work_dir(work, resume, overwrite)
        dist.barrier()
        setup_logging(work, dist.is_main, log_name)
        device = select_device(settings.device)
        torch.set_flush_denormal(True)  # tiny optimizer statistics otherwise become slow denormals on CPUs
        threads = configure_threads(settings.num_threads) if device.type == "cpu" else torch.get_num_threads()
        seed_everything(settings.seed + dist.rank, settings.deterministic)
        return cls(settings, dist, device, autocast_dtype(device, settings.precision), threads, work, tensorboard)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        release_threads()
