"""SlowFast (Feichtenhofer et al. 2019) as a feature extractor: two ResNet-3D pathways with lateral
fusion, globally average-pooled and concatenated (slow 2048 + fast 256 = 2304-d for R50).

Written here (no PySlowFast or PyTorchVideo dependency) with **PySlowFast's parameter names**
(``s1.pathway0_stem.conv.weight``, ``s2.pathway1_res0.branch2.a_bn.running_var``,
``s3_fuse.conv_f2s.weight``, ...), so the released checkpoints load without renaming:

- ``SLOWFAST_8x8_R50.pkl`` (the Kinetics-400 SlowFast R50 8x8 of the PySlowFast model zoo,
  https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl; what the HERO
  extractor, hence the QVHighlights release, uses): a Caffe2 pickle ``{"blobs": {name: ndarray}}`` with
  Caffe2 names (``res4_2_branch2b_w``, ``t_res_conv1_bn_riv``, ``t_res3_3_branch2c_bn_subsample_w``,
  ``pred_w``, plus ``*_momentum`` solver state); ``caffe2_to_pyslowfast`` renames them;
- a PySlowFast ``.pyth`` checkpoint (``{"model_state": state_dict}``) or a plain state dict.

The classifier (``head.projection``) is not part of a feature extractor and is ignored. ``SlowFastConfig``
has width and depth options so tests run a tiny random model of the same structure.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from grounding.backbones.base import describe_weights
from grounding.errors import GroundingError

# temporal kernel sizes of (stem, res2, res3, res4, res5) per pathway: SlowFast's "slow" and "fast"
_TEMPORAL_KERNELS = ((1, 1, 1, 3, 3), (5, 3, 3, 3, 3))
_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@dataclass(frozen=True)
class SlowFastConfig:
    """SlowFast R50 8x8 by default (``configs/Kinetics/c2/SLOWFAST_8x8_R50.yaml``): 32 fast frames, 8 slow
    (``alpha`` 4), fast channels 1/8 of slow (``beta_inv``), fusion conv 7x1x1 with 2x channels."""

    blocks: tuple[int, int, int, int] = _DEPTHS[50]
    width: int = 64  # channels of the slow stem; stage widths are 4, 8, 16, 32 times it
    alpha: int = 4
    beta_inv: int = 8
    fusion_ratio: int = 2
    fusion_kernel: int = 7

    @property
    def feature_dim(self) -> int:
        return 32 * self.width + 32 * self.width // self.beta_inv

    @property
    def name(self) -> str:
        depth = {v: k for k, v in _DEPTHS.items()}.get(self.blocks)
        return f"SlowFast R{depth} 8x8" if depth and self.width == 64 else f"SlowFast (blocks {self.blocks}, width {self.width})"


def _bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


class Stem(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, kt: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(dim_in, dim_out, (kt, 7, 7), stride=(1, 2, 2), padding=(kt // 2, 3, 3), bias=False)
        self.bn = _bn(dim_out)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


class Bottleneck(nn.Module):
    """Tx1x1, 1x3x3 (strided), 1x1x1 convolutions, each with batch norm."""

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, kt: int, stride: int) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
        self.a_bn = _bn(dim_inner)
        self.b = nn.Conv3d(dim_inner, dim_inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.b_bn = _bn(dim_inner)
        self.c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.c_bn = _bn(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a_bn(self.a(x)))
        x = torch.relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, kt: int, stride: int) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False)
            self.branch1_bn = _bn(dim_out)
        self.branch2 = Bottleneck(dim_in, dim_inner, dim_out, kt, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.branch1_bn(self.branch1(x)) if hasattr(self, "branch1") else x
        return torch.relu(shortcut + self.branch2(x))


class Pathways(nn.Module):
    """A stage of both pathways: ``pathway{p}_stem`` or ``pathway{p}_res{i}`` submodules, as PySlowFast."""

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for p, x in enumerate(xs):
            for name, module in self.named_children():
                if name.startswith(f"pathway{p}_"):
                    x = module(x)
            out.append(x)
        return out


class FuseFastToSlow(nn.Module):
    """The lateral connection: a temporally strided conv of the fast features, concatenated to the slow ones."""

    def __init__(self, dim_fast: int, ratio: int, kernel: int, alpha: int) -> None:
        super().__init__()
        self.conv_f2s = nn.Conv3d(dim_fast, dim_fast * ratio, (kernel, 1, 1), stride=(alpha, 1, 1),
                                  padding=(kernel // 2, 0, 0), bias=False)
        self.bn = _bn(dim_fast * ratio)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = xs
        return [torch.cat([slow, torch.relu(self.bn(self.conv_f2s(fast)))], dim=1), fast]


class SlowFast(nn.Module):
    """``[slow (B, 3, T/alpha, H, W), fast (B, 3, T, H, W)]`` -> ``(B, feature_dim)``: the mean over time and
    space of each pathway's last stage, slow then fast (HERO's head without its classifier)."""

    def __init__(self, cfg: SlowFastConfig = SlowFastConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w, b, r = cfg.width, cfg.beta_inv, cfg.fusion_ratio
        self.s1 = Pathways()
        self.s1.add_module("pathway0_stem", Stem(3, w, _TEMPORAL_KERNELS[0][0]))
        self.s1.add_module("pathway1_stem", Stem(3, w // b, _TEMPORAL_KERNELS[1][0]))
        self.s1_fuse = FuseFastToSlow(w // b, r, cfg.fusion_kernel, cfg.alpha)
        dim_in = [w + w // b * r, w // b]
        for stage, blocks in enumerate(cfg.blocks, start=2):
            scale = 2 ** (stage - 2)  # 1, 2, 4, 8
            inner, out = [w * scale, w * scale // b], [4 * w * scale, 4 * w * scale // b]
            module = Pathways()
            for p in range(2):
                for i in range(blocks):
                    module.add_module(f"pathway{p}_res{i}", ResBlock(
                        dim_in[p] if i == 0 else out[p], inner[p], out[p], _TEMPORAL_KERNELS[p][stage - 1],
                        stride=1 if stage == 2 or i > 0 else 2))
            self.add_module(f"s{stage}", module)
            if stage < 5:
                self.add_module(f"s{stage}_fuse", FuseFastToSlow(out[1], r, cfg.fusion_kernel, cfg.alpha))
            dim_in = [out[0] + out[1] * r, out[1]]
        self.feature_dim = cfg.feature_dim

    def forward(self, pathways: list[torch.Tensor]) -> torch.Tensor:
        x = self.s1_fuse(self.s1(list(pathways)))
        for stage in range(2, 6):
            x = getattr(self, f"s{stage}")(x)
            if stage < 5:
                x = getattr(self, f"s{stage}_fuse")(x)
        return torch.cat([xp.mean(dim=(2, 3, 4)) for xp in x], dim=1)


# ---------------------------------------------------------------------------------------- weights
_BN_FIELDS = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
def _pathway(t: str | None) -> int:
    return 1 if t else 0  # Caffe2's "t_" prefix marks the fast pathway


_CAFFE2_RULES = (  # (pattern, PySlowFast prefix); the suffix (w, b, bn_s, bn_riv, ...) is mapped after
    (r"^(t_)?conv1_(\w+)$", lambda m: f"s1.pathway{_pathway(m[1])}_stem.conv"),
    (r"^(t_)?res_conv1_bn_(\w+)$", lambda m: f"s1.pathway{_pathway(m[1])}_stem.bn"),
    (r"^t_pool1_subsample_bn_(\w+)$", lambda m: "s1_fuse.bn"),
    (r"^t_pool1_subsample_(\w+)$", lambda m: "s1_fuse.conv_f2s"),
    (r"^t_res(\d)_\d+_branch2c_bn_subsample_bn_(\w+)$", lambda m: f"s{m[1]}_fuse.bn"),
    (r"^t_res(\d)_\d+_branch2c_bn_subsample_(\w+)$", lambda m: f"s{m[1]}_fuse.conv_f2s"),
    (r"^(t_)?res(\d)_(\d+)_branch2([abc])_bn_(\w+)$",
     lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch2.{m[4]}_bn"),
    (r"^(t_)?res(\d)_(\d+)_branch2([abc])_(\w+)$",
     lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch2.{m[4]}"),
    (r"^(t_)?res(\d)_(\d+)_branch1_bn_(\w+)$", lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch1_bn"),
    (r"^(t_)?res(\d)_(\d+)_branch1_(\w+)$", lambda m: f"s{m[2]}.pathway{_pathway(m[1])}_res{m[3]}.branch1"),
    (r"^pred_(\w+)$", lambda m: "head.projection"),
)


def caffe2_to_pyslowfast(name: str) -> str | None:
    """A Caffe2 blob name of the released SlowFast checkpoints -> the PySlowFast parameter name, or None
    for solver state (``*_momentum``, ``lr``, ``model_iter``) and names no rule knows."""
    if name.endswith("_momentum") or name in ("lr", "model_iter"):
        return None
    for pattern, prefix_of in _CAFFE2_RULES:
        m = re.match(pattern, name)
        if m:
            prefix, suffix = prefix_of(m), m.groups()[-1]
            fields = _BN_FIELDS if prefix.endswith("bn") else {"w": "weight", "b": "bias"}
            return f"{prefix}.{fields[suffix]}" if suffix in fields else None
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Caffe2 checkpoints are pickles of numpy arrays; refuse anything else a pickle could run."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights pickle")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors by PySlowFast name from a Caffe2 ``.pkl``, a PySlowFast ``.pyth`` or a state-dict file."""
    if path.is_dir():
        raise GroundingError(f"{path} is a folder holding {_folder_kind(path)}, not SlowFast weights; the SlowFast "
                             "part needs a checkpoint file (SLOWFAST_8x8_R50.pkl)")
    try:
        if path.suffix == ".pkl":
            with path.open("rb") as fh:
                blobs = _ArrayUnpickler(fh, encoding="latin1").load()
            blobs = blobs.get("blobs", blobs) if isinstance(blobs, Mapping) else blobs
            if not isinstance(blobs, Mapping):
                raise GroundingError(f"{path} is not a Caffe2 checkpoint (no 'blobs' table)")
            out = {}
            for key, value in blobs.items():
                name = caffe2_to_pyslowfast(str(key))
                if name is not None and isinstance(value, np.ndarray):
                    out[name] = torch.from_numpy(np.ascontiguousarray(value))
            return out if out else {str(k): v for k, v in blobs.items()}
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, OSError, RuntimeError, EOFError, ValueError) as err:
        raise GroundingError(f"cannot read weights {path} ({err}); the SlowFast part takes SLOWFAST_8x8_R50.pkl "
                             "(Caffe2) or a PySlowFast .pyth checkpoint") from err
    if isinstance(state, Mapping):
        saved = state.get("slowfast_config")
        for key in ("model_state", "state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
        tensors = {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
        if isinstance(saved, Mapping):
            tensors["slowfast_config"] = saved  # type: ignore[assignment]
        return tensors
    raise GroundingError(f"{path} holds a {type(state).__name__}, not a checkpoint's state dict")


def _folder_kind(path: Path) -> str:
    import json

    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return "no checkpoint"
    return f"a transformers '{model_type}' model" if model_type else "a transformers model"


def identify(state: Mapping[str, Any]) -> str:
    """A short guess at which network a state dict belongs to, for error messages."""
    keys = sorted(state)
    text = " ".join(keys[:2000])
    if "pathway1_res" in text:
        blocks = tuple(len({k.split(".")[1] for k in keys if k.startswith(f"s{s}.pathway0_res")}) for s in range(2, 6))
        stem = state.get("s1.pathway0_stem.conv.weight")
        width = int(stem.shape[0]) if hasattr(stem, "shape") else 64
        return SlowFastConfig(blocks=blocks, width=width).name if all(blocks) else "a SlowFast network"
    if "pathway0_res" in text:
        return "a single-pathway PySlowFast network (Slow-only/I3D/C2D)"
    return describe_weights(keys)


def load_slowfast(path: str | Path, cfg: SlowFastConfig | None = None) -> SlowFast:
    """``SlowFast(cfg)`` with the weights of ``path`` (every parameter and BN statistic, checked), eval mode.
    ``cfg`` None: R50 8x8, or the ``slowfast_config`` a file of ``save_random_slowfast`` carries."""
    path = Path(path)
    state = read_state_dict(path)
    saved = state.pop("slowfast_config", None)
    if cfg is None:
        cfg = SlowFastConfig(**{**saved, "blocks": tuple(saved["blocks"])}) if saved else SlowFastConfig()
    with torch.device("meta"):  # shapes only: nothing is initialised, the checkpoint fills every tensor
        model = SlowFast(cfg)
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: v for k, v in state.items() if not k.startswith("head.") and not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    wrong = [k for k in expected if k in given and tuple(given[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        detail = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else
                  f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else
                  f"{wrong[0]} has shape {tuple(given[wrong[0]].shape)}, expected {tuple(expected[wrong[0]].shape)}")
        raise GroundingError(f"{path} holds the weights of {identify(state)}, not of {cfg.name} "
                             f"({detail}); pass the SlowFast checkpoint (SLOWFAST_8x8_R50.pkl)")
    counters = {k: torch.zeros((), dtype=torch.long) for k in model.state_dict() if k.endswith("num_batches_tracked")}
    model.load_state_dict({**{k: v.float() for k, v in given.items()}, **counters}, strict=True, assign=True)
    return model.eval()


def save_random_slowfast(path: str | Path, cfg: SlowFastConfig, seed: int = 0) -> Path:
    """A randomly initialised ``SlowFast(cfg)`` (random BN statistics too) saved as a PySlowFast-style
    ``{"model_state": ...}`` file: the tiny stand-in for the released checkpoint in tests and parity runs."""
    torch.manual_seed(seed)
    model = SlowFast(cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": model.state_dict(), "slowfast_config": vars(cfg) | {"blocks": list(cfg.blocks)}}, path)
    return path
