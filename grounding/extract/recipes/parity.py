"""Parity of ``qvh_slowfast_clip`` with the reference pipeline (``tools/compare_recipe.py``).

Runs, on one video, the HERO video feature extractor's own SlowFast and CLIP code
(linjieli222/HERO_Video_Feature_Extractor, checked out by the user outside the project; nothing is
fetched) and this recipe, and compares: the source frame behind every sampled frame, the uint8 frames
and the normalised tensors each backbone gets, and the backbone outputs with the same random weights
(the reference's randomly initialised SlowFast R50 saved as a PySlowFast checkpoint and loaded by
ours; a random OpenAI-CLIP ViT-B/32, from the ``openai-clip`` package's ``clip/model.py``, converted
to transformers names and loaded by ours).

What the reference needs and we stand in for, each only where it cannot run on a CPU machine: its
``ffprobe`` call (the stub returns decord's frame count, rate, size and duration), ``.cuda()`` calls
(identity) and the CUDA default of its ``Normalize`` (CPU), detectron2's ``ROIAlign`` (unused by the
feature model), OpenCV (used only by its YUV path). Its extra packages (``ffmpeg-python``, ``fvcore``,
``pandas``, ``openai-clip``) belong in a separate environment, e.g. ``/work/ref/venv`` made with
``--system-site-packages``; never the project's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import types
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grounding.errors import GroundingError
from grounding.extract.recipes import get_recipe, hero
from grounding.extract.recipes.encode import part_clips, probe
from grounding.extract.recipes.frames import FfmpegFrames, ffmpeg_binary

REQUIRED = ("ffmpeg", "fvcore", "pandas")  # ffmpeg-python, fvcore, pandas


def missing_requirements(reference: Path) -> list[str]:
    """What keeps the comparison from running here (empty when it can run)."""
    missing = [f"reference checkout {reference}"] if not (reference / "slowfast/extract_feature").is_dir() else []
    missing += [f"python package '{m}'" for m in REQUIRED if importlib.util.find_spec(m) is None]
    return missing


def _load(name: str, path: Path, search: Path) -> types.ModuleType:
    """Import the reference file ``path`` as module ``name``, with its own folder importable."""
    sys.path.insert(0, str(search))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module
    finally:
        sys.path.remove(str(search))


@contextlib.contextmanager
def reference_environment(video: Path):
    """The stand-ins of the module docstring, undone afterwards."""
    import decord
    import ffmpeg

    reader = decord.VideoReader(str(video))
    height, width = reader[0].shape[:2]
    num, fps = len(reader), float(reader.get_avg_fps())
    rate = Fraction(fps).limit_denominator(100000)
    stream = {"codec_type": "video", "width": width, "height": height, "avg_frame_rate": f"{rate.numerator}/"
              f"{rate.denominator}", "nb_frames": str(num), "duration": f"{num / fps:.6f}"}
    saved = {"probe": ffmpeg.probe, "cuda": torch.Tensor.cuda, "path": os.environ.get("PATH", "")}
    stubs = {"detectron2": types.ModuleType("detectron2"), "detectron2.layers": types.ModuleType("detectron2.layers")}
    stubs["detectron2.layers"].ROIAlign = None  # type: ignore[attr-defined]
    if importlib.util.find_spec("cv2") is None:
        stubs["cv2"] = types.ModuleType("cv2")
    with tempfile.TemporaryDirectory() as bin_dir:
        os.symlink(ffmpeg_binary(), Path(bin_dir) / "ffmpeg")  # ffmpeg-python runs "ffmpeg" from PATH
        ffmpeg.probe = lambda path, **kw: {"streams": [stream]}
        torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved['path']}"
        sys.modules.update({k: v for k, v in stubs.items() if k not in sys.modules})
        try:
            yield
        finally:
            ffmpeg.probe = saved["probe"]
            torch.Tensor.cuda = saved["cuda"]  # type: ignore[method-assign]
            os.environ["PATH"] = saved["path"]


def _randomise_bn(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                for t, lo, hi in ((m.weight, 0.5, 1.5), (m.bias, -0.2, 0.2), (m.running_mean, -0.2, 0.2),
                                  (m.running_var, 0.5, 1.5)):
                    t.copy_(torch.rand(t.shape, generator=generator) * (hi - lo) + lo)


def openai_visual_to_transformers(visual: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """OpenAI CLIP's ``visual.*`` parameters under ``CLIPVisionModelWithProjection`` names."""
    out = {"vision_model.embeddings.patch_embedding.weight": visual["conv1.weight"],
           "vision_model.embeddings.class_embedding": visual["class_embedding"],
           "vision_model.embeddings.position_embedding.weight": visual["positional_embedding"],
           "vision_model.pre_layrnorm.weight": visual["ln_pre.weight"], "vision_model.pre_layrnorm.bias": visual["ln_pre.bias"],
           "vision_model.post_layernorm.weight": visual["ln_post.weight"],
           "vision_model.post_layernorm.bias": visual["ln_post.bias"], "visual_projection.weight": visual["proj"].t()}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = visual[f"{src}attn.in_proj_{kind}"].chunk(3)
            out |= {f"{dst}self_attn.q_proj.{kind}": q, f"{dst}self_attn.k_proj.{kind}": k,
                    f"{dst}self_attn.v_proj.{kind}": v,
                    f"{dst}self_attn.out_proj.{kind}": visual[f"{src}attn.out_proj.{kind}"],
                    f"{dst}layer_norm1.{kind}": visual[f"{src}ln_1.{kind}"],
                    f"{dst}layer_norm2.{kind}": visual[f"{src}ln_2.{kind}"],
                    f"{dst}mlp.fc1.{kind}": visual[f"{src}mlp.c_fc.{kind}"],
                    f"{dst}mlp.fc2.{kind}": visual[f"{src}mlp.c_proj.{kind}"]}
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    a, b = a.double(), b.double()
    return {"max_abs": float((a - b).abs().max()), "max_rel": float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)),
            "equal": bool(torch.equal(a, b))}


def _source_times(frames: np.ndarray, stream: np.ndarray, sources: np.ndarray, fps: float) -> np.ndarray:
    """The source time of each frame of ``frames`` (..., S, S, 3), found in the decoded ``stream``."""
    index = {stream[i].tobytes(): i for i in range(len(stream) - 1, -1, -1)}
    flat = frames.reshape(-1, *frames.shape[-3:])
    positions = np.array([index.get(f.tobytes(), -1) for f in flat])
    if (positions < 0).any():
        return np.full(frames.shape[:-3], np.nan)
    return (sources[positions] / fps).reshape(frames.shape[:-3])


@torch.inference_mode()
def compare_slowfast(video: Path, reference: Path, clips: int, seed: int = 0) -> dict[str, Any]:
    """Frames, inputs and (``clips`` > 0) the R50 outputs of the first ``clips`` clips."""
    base = reference / "slowfast"
    sys.path.insert(0, str(base))
    try:
        from slowfast.config.defaults import get_cfg
        from slowfast.models.video_model_builder import SlowFastModel
    finally:
        sys.path.remove(str(base))
    loader_mod = _load("hero_sf_video_loader", base / "extract_feature/video_loader.py", base / "extract_feature")
    prep_mod = _load("hero_sf_preprocessing", base / "extract_feature/preprocessing.py", base / "extract_feature")
    cfg = get_cfg()
    cfg.merge_from_file(str(base / "configs/Kinetics/c2/extract_SLOWFAST_8x8_R50.yaml"))
    prep_mod.Normalize.__init__.__defaults__ = (torch.device("cpu"),)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "videos.csv"
        csv.write_text(f"video_path,feature_path\n{video},{Path(tmp) / 'out.npz'}\n")
        preprocess = prep_mod.Preprocessing("3d", cfg, target_fps=30, size=224, clip_len="2", padding_mode="tile",
                                            min_num_clips=1)
        ref_clips = loader_mod.VideoLoader(str(csv), preprocess, framerate=30, size=224, centercrop=True,
                                           pix_fmt="rgb24")[0]["video"]  # (T, 32, 224, 224, 3) uint8
    fast = ref_clips[:max(clips, 1)].float().permute(0, 4, 1, 2, 3) / 255.0
    ref_inputs = loader_mod.pack_pathway_output(cfg, prep_mod.Normalize([0.45] * 3, [0.225] * 3, torch.device("cpu"))(fast))

    recipe = get_recipe("qvh_slowfast_clip")
    part = recipe.part("slowfast")
    info = probe(video, recipe)
    with FfmpegFrames(video, 30, info.height, info.width, 224) as frames:
        stream = frames.take(np.arange(hero.fps_filter_count(info.info.num_frames, info.info.fps, 30))[None])[0]
    positions = part.clip_positions(info.info, len(stream))
    ours_clips = np.concatenate(list(part_clips(part, info)))  # (T, 32, 224, 224, 3): the extraction's own path
    sources = hero.fps_filter_sources(info.info.num_frames, info.info.fps, 30, len(stream))
    our_times = sources[positions] / info.info.fps
    ref_times = _source_times(ref_clips.numpy(), stream, sources, info.info.fps)
    our_inputs = part.model_input(torch.from_numpy(ours_clips[:max(clips, 1)]))
    report = {
        "clips": {"reference": int(ref_clips.shape[0]), "ours": int(positions.shape[0])},
        "frame_times_identical": bool(ref_times.shape == our_times.shape and np.array_equal(ref_times, our_times)),
        "frames_uint8_equal": bool(np.array_equal(ref_clips.numpy(), ours_clips)),
        "slow_input": _diff(our_inputs[0], ref_inputs[0]), "fast_input": _diff(our_inputs[1], ref_inputs[1]),
        "clip0_times_s": [round(float(t), 4) for t in our_times[0]],
    }
    if clips < 1:
        return report
    torch.manual_seed(seed)
    ref_model = SlowFastModel(cfg).eval()
    _randomise_bn(ref_model, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random_slowfast_r50.pyth"
        torch.save({"model_state": ref_model.state_dict()}, path)
        ours = part.load(path)
    ref_out, our_out = ref_model([x.clone() for x in ref_inputs]), ours(our_inputs)
    return {**report, "output": {**_diff(our_out, ref_out), "compared_clips": clips, "dim": int(our_out.shape[1]),
                                 "max_abs_value": float(ref_out.abs().max())}}


@torch.inference_mode()
def compare_clip(video: Path, reference: Path, openai_clip_model: Path | None, seed: int = 0) -> dict[str, Any]:
    base = reference / "clip"
    loader_mod = _load("hero_clip_video_loader", base / "video_loader.py", base)
    prep_mod = _load("hero_clip_preprocessing", base / "preprocessing.py", base)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "videos.csv"
        csv.write_text(f"video_path,feature_path\n{video},{Path(tmp) / 'out.npz'}\n")
        ref_frames = loader_mod.VideoLoader(str(csv), framerate=0.5, size=224, centercrop=True)[0]["video"]
    ref_input = prep_mod.Preprocessing()(ref_frames)  # (T, 3, 224, 224)

    recipe = get_recipe("qvh_slowfast_clip")
    part = recipe.part("clip")
    info = probe(video, recipe)
    ours_frames = np.concatenate(list(part_clips(part, info)))  # (T, 1, 224, 224, 3)
    count = len(ours_frames)
    our_input = part.model_input(torch.from_numpy(ours_frames))
    ref_uint8 = ref_frames.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()
    sources = hero.fps_filter_sources(info.info.num_frames, info.info.fps, part.decode_fps(info.info), count)
    result: dict[str, Any] = {
        "clips": {"reference": int(ref_frames.shape[0]), "ours": count},
        "frame_times_identical": bool(ref_uint8.shape == ours_frames[:, 0].shape
                                      and np.array_equal(_source_times(ref_uint8, ours_frames[:, 0], sources,
                                                                       info.info.fps), sources / info.info.fps)),
        "frames_uint8_equal": bool(np.array_equal(ref_uint8, ours_frames[:, 0])),
        "input": _diff(our_input, ref_input),
        "times_s": [round(float(t), 4) for t in sources / info.info.fps],
    }
    if openai_clip_model is None:
        return result
    model_mod = _load("openai_clip_model", openai_clip_model, openai_clip_model.parent)
    torch.manual_seed(seed)
    ref_model = model_mod.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                               vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
                               transformer_heads=8, transformer_layers=12).eval()
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    hf = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                        num_attention_heads=12, image_size=224, patch_size=32,
                                                        projection_dim=512, hidden_act="quick_gelu"))
    visual = {k.removeprefix("visual."): v for k, v in ref_model.state_dict().items() if k.startswith("visual.")}
    missing = hf.load_state_dict(openai_visual_to_transformers(visual, 12), strict=False).missing_keys
    if [k for k in missing if "position_ids" not in k]:
        raise GroundingError(f"CLIP conversion left weights unset: {missing[:3]}")
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = part.load(Path(tmp))
    result["output"] = _diff(ours(our_input), ref_model.encode_image(ref_input.float()).float())
    return result


def compare_qvh_slowfast_clip(video: str | Path, reference: str | Path, clips: int = 2,
                              openai_clip_model: str | Path | None = None) -> dict[str, Any]:
    """The parity report of the module docstring, as a JSON-able dict; ``clips=0`` and no
    ``openai_clip_model``: frames and inputs only (no model is run)."""
    video, reference = Path(video), Path(reference)
    missing = missing_requirements(reference)
    if missing:
        raise GroundingError(f"the reference comparison cannot run here; missing: {', '.join(missing)} "
                             "(see grounding/extract/recipes/parity.py)")
    with reference_environment(video):
        report = {"video": str(video), "reference": str(reference),
                  "slowfast": compare_slowfast(video, reference, clips),
                  "clip": compare_clip(video, reference, Path(openai_clip_model) if openai_clip_model else None)}
    return report
