"""Let the authors' Moment-DETR / QD-DETR ``train.py`` run on a CPU-only machine, without editing their code.

Put this folder first on PYTHONPATH of *their* process (``grounding.bench.parity_detr`` does); Python imports
``sitecustomize`` at start-up. It changes two things and nothing else:

- ``Tensor.cuda()`` / ``Module.cuda()`` return the object unchanged (QD-DETR's decoder calls ``.cuda()`` on a
  new tensor; they run with ``--device -1``, so everything else is on the CPU already);
- ``PARITY_THREADS`` (when set) pins torch's CPU threads.

Their other needs (scipy's ``linear_sum_assignment``, scikit-learn for their evaluator) are real packages
on their PYTHONPATH, not shims: ``pip install --target <folder> scipy scikit-learn tabulate``, see docs/baselines.md.
"""

import os

import torch

torch.Tensor.cuda = lambda self, *args, **kwargs: self
torch.nn.Module.cuda = lambda self, *args, **kwargs: self

if os.environ.get("PARITY_THREADS"):
    torch.set_num_threads(int(os.environ["PARITY_THREADS"]))
