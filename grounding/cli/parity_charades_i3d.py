"""Parity of recipe ``charades_i3d`` with the reference pipeline it reproduces (VSLNet's extract_charades.py).

A check for maintainers (``tools/parity_charades_i3d.py``, ``grounding-parity-charades-i3d``). It needs a
local copy of IsaacChanghau/VSLNet (``--vslnet``, e.g. unpacked into /work/ref/VSLNet) and
OpenCV (``pip install opencv-python-headless``, which the reference reads frames with); without either
it says so and exits 0. It fetches nothing.

The reference script runs as written, with four run-time shims that change no number: its
``args.use_fine_tuned`` typo (the option is ``--use_finetuned``) is corrected, ``.cuda()`` is a no-op
(CPU), it runs under ``torch.no_grad()`` (its ``volatile=True`` is a no-op in today's PyTorch), and
when torchvision is not installed its one use of it, ``transforms.Compose``, is a stand-in that applies
the transforms in order. Both
pipelines get the same random InceptionI3d weights (a pytorch-i3d-layout file written by this script).

Compared, on the same video: the 24 fps JPEG frames (bytes; identical frames mean identical frame
times k / 24 s), the window tensors fed to the backbone, and the output features. ``--preprocess-only``
skips the two networks (the reference's ``extract_features`` returns zeros) for a quick check; a
``--downscale WxH`` copy of the video exercises the short-side upscaling branch.

    python tools/parity_charades_i3d.py --vslnet /work/ref/VSLNet --out parity.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from grounding.extract.recipes import charades_i3d as recipe
from grounding.extract.recipes import get_recipe
from grounding.extract.recipes.encode import encode_recipe, load_models, probe
from grounding.extract.recipes.frames import ffmpeg_binary

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VIDEO = ROOT.parent / "shared" / "videos" / "charades_sample.mp4"


def random_reference_weights(module, path: Path, seed: int) -> None:
    """Random weights in pytorch-i3d's layout (BatchNorm statistics kept in a sane range), saved to ``path``."""
    torch.manual_seed(seed)
    model = module.InceptionI3d(400, in_channels=3)
    state = model.state_dict()
    for name, tensor in state.items():
        if not tensor.dtype.is_floating_point:
            continue
        if name.endswith("running_var"):
            tensor.uniform_(0.5, 1.5)
        elif name.endswith("bn.weight"):
            tensor.uniform_(0.8, 1.2)
        else:
            tensor.normal_(0.0, 0.05)
    torch.save(state, path)


def run_reference(vslnet: Path, video: Path, weights: Path, work: Path, preprocess_only: bool) -> dict:
    """VSLNet's prepare/extract_charades.py on ``video``; returns its frames folder, the inputs it fed
    its model and its saved features."""
    vid = video.stem
    for sub in ("videos", "dataset", "images", "features", "bin"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    os.symlink(video.resolve(), work / "videos" / f"{vid}.mp4")
    for split in ("train", "test"):
        (work / "dataset" / f"charades_sta_{split}.txt").write_text(f"{vid} 0.0 1.0##a person does something.\n")
    os.symlink(ffmpeg_binary(), work / "bin" / "ffmpeg")  # the script calls `ffmpeg` through the shell

    _torchvision_stand_in()
    extractor = importlib.import_module("prepare.feature_extractor")
    fed: list[np.ndarray] = []
    original = extractor.InceptionI3d.extract_features

    def recording(self, x):
        fed.append(x.detach().cpu().numpy().copy())
        if preprocess_only:
            return torch.zeros(2, 1024)
        return original(self, x)

    extractor.InceptionI3d.extract_features = recording
    source = (vslnet / "prepare" / "extract_charades.py").read_text()
    source = source.replace("args.use_fine_tuned", "args.use_finetuned")
    argv = ["extract_charades.py", "--load_model", str(weights), "--video_dir", str(work / "videos"),
            "--dataset_dir", str(work / "dataset"), "--images_dir", str(work / "images"),
            "--save_dir", str(work / "features"), "--fps", "24", "--strides", "24"]
    saved = sys.argv, os.environ["PATH"], torch.nn.Module.cuda, torch.Tensor.cuda
    sys.argv, os.environ["PATH"] = argv, f"{work / 'bin'}{os.pathsep}{os.environ['PATH']}"
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        with torch.no_grad():
            exec(compile(source, "extract_charades.py", "exec"),
                 {"__name__": "prepare.extract_charades", "__package__": "prepare"})
    finally:
        sys.argv, os.environ["PATH"], torch.nn.Module.cuda, torch.Tensor.cuda = saved
        extractor.InceptionI3d.extract_features = original
    return {"frames": sorted((work / "images" / vid).glob("*.jpg")), "inputs": fed,
            "features": np.load(work / "features" / f"{vid}.npy")}


class _Compose:
    """Stand-in for ``torchvision.transforms.Compose`` (apply each transform in order)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


def _torchvision_stand_in() -> None:
    if importlib.util.find_spec("torchvision") is None:
        import types

        tv = types.ModuleType("torchvision")
        tv.transforms = types.SimpleNamespace(Compose=_Compose)
        sys.modules["torchvision"] = tv


def digest(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def compare(video: Path, vslnet: Path, seed: int, preprocess_only: bool, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="parity_i3d_") as tmp:
        work = Path(tmp)
        sys.path.insert(0, str(vslnet))
        weights = work / "random_i3d.pt"
        random_reference_weights(importlib.import_module("prepare.feature_extractor"), weights, seed)

        t0 = time.time()
        ref = run_reference(vslnet, video, weights, work / "ref", preprocess_only)
        ref_s = time.time() - t0

        ours_dir = work / "ours"
        ours_dir.mkdir()
        our_jpegs = recipe.decode_jpeg_frames(video, ours_dir)
        same_bytes = len(our_jpegs) == len(ref["frames"]) and all(
            digest(a) == digest(b) for a, b in zip(our_jpegs, ref["frames"], strict=True))
        frames = recipe.read_frames(video)
        starts = recipe.window_starts(len(frames), video)
        inputs = [recipe.model_input(frames[s : s + recipe.WINDOW][None]).numpy() for s in starts]
        same_count = len(inputs) == len(ref["inputs"])
        pairs = list(zip(inputs, ref["inputs"], strict=True)) if same_count else []
        input_diff = max(float(np.abs(a - b).max()) for a, b in pairs) if pairs else None
        differing = sum(int((a != b).sum()) for a, b in pairs) if pairs else None
        report = {
            "video": str(video), "num_frames_24fps": {"ours": len(frames), "reference": len(ref["frames"])},
            "jpeg_frames_identical": same_bytes,
            "windows": {"ours": len(starts), "reference": len(ref["inputs"])},
            "window_starts": " ".join(map(str, starts.tolist())),
            "input_shape": list(inputs[0].shape),
            "input_max_abs_diff": input_diff,
            "input_values_differing": differing,
            "input_values": sum(a.size for a in inputs),
        }
        if not preprocess_only:  # through the registered recipe, as tools/extract_features.py --recipe runs it
            t0 = time.time()
            recipe_def = get_recipe(recipe.NAME)
            models = load_models(recipe_def, {"i3d": weights}, torch.device("cpu"))
            feats = encode_recipe(recipe_def, models, probe(video, recipe_def), torch.device("cpu"), batch_size)["i3d"]
            ours_s = time.time() - t0
            theirs = ref["features"]
            report.update({
                "features_shape": {"ours": list(feats.shape), "reference": list(theirs.shape)},
                "features_max_abs_diff": float(np.abs(feats - theirs).max()) if feats.shape == theirs.shape else None,
                "features_max_abs": float(np.abs(theirs).max()),
                "batch_size": {"ours": batch_size, "reference": 1},
                "seconds_busy_machine": {"reference": round(ref_s, 1), "ours": round(ours_s, 1)},
            })
        return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--vslnet", type=Path, default=Path("/work/ref/VSLNet"), help="local copy of IsaacChanghau/VSLNet")
    ap.add_argument("--downscale", default=None, help="WxH: compare on a copy scaled to this size (upscaling branch)")
    ap.add_argument("--preprocess-only", action="store_true", help="frames and backbone inputs only, no networks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16, help="our windows per forward pass (the reference: 1)")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if not (args.vslnet / "prepare" / "extract_charades.py").is_file():
        print(f"skip: no VSLNet copy at {args.vslnet} (unpack IsaacChanghau/VSLNet there)")
        return 0
    if importlib.util.find_spec("cv2") is None:
        print("skip: the reference reads frames with OpenCV; pip install opencv-python-headless")
        return 0
    if not args.video.is_file():
        print(f"skip: no video at {args.video}")
        return 0
    with tempfile.TemporaryDirectory(prefix="parity_video_") as tmp:
        video = args.video
        if args.downscale:
            w, h = args.downscale.lower().split("x")
            video = Path(tmp) / f"{args.video.stem}_{w}x{h}.mp4"
            subprocess.run([ffmpeg_binary(), "-nostdin", "-loglevel", "error", "-i", str(args.video),
                            "-vf", f"scale={w}:{h}", "-an", str(video)], check=True)
        report = compare(video, args.vslnet, args.seed, args.preprocess_only, args.batch_size)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
