"""Extract clip features from raw videos (or query text features from an annotation file).

Video mode:  --videos DIR_OR_LIST --out DIR --backbone clip|videomae|xclip --model MODEL_DIR
             [--clip-len S | --fps F] [--frames-per-clip N] [--format npy|npz|hdf5] ...
Recipe mode: --videos DIR_OR_LIST --out DIR --recipe qvh_slowfast_clip --weights PATH [--weights part=PATH]
             (a named reproduction of a released feature set; see docs/features.md, "Recipes")
Text mode:   --text ANNOTATION --dataset NAME --out DIR --model TEXT_MODEL_DIR

Exit status: 0 when everything was extracted (or already done), 1 when some videos failed (listed at
the end; rerun the same command to retry only those), 2 for a usage error. See docs/features.md.
"""

from __future__ import annotations

import argparse

from grounding.backbones import BACKBONES
from grounding.errors import exit_cleanly_on_user_errors
from grounding.extract.inputs import parse_shard
from grounding.extract.pipeline import ExtractConfig, extract_videos
from grounding.extract.queries import TextExtractConfig, extract_text
from grounding.extract.recipes import RECIPES
from grounding.extract.sampling import CLIP_COUNT_RULES
from grounding.extract.writers import FEATURE_WRITERS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", help="a folder of videos (searched recursively) or a text file of paths")
    parser.add_argument("--out", required=True, help="output folder (features + manifest.jsonl)")
    parser.add_argument("--backbone", choices=BACKBONES.names(), help="video mode: the feature model")
    parser.add_argument("--model", help="local folder of the transformers model (never downloaded)")
    parser.add_argument("--recipe", choices=RECIPES.names(), help="recipe mode: a released feature set to reproduce")
    parser.add_argument("--weights", action="append", default=[], metavar="[PART=]PATH",
                        help="recipe mode: the recipe's weights (a folder holding every part's, or PART=PATH each)")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--clip-len", type=float, help="seconds per clip (default 2; Charades-STA uses 1)")
    rate.add_argument("--fps", type=float, help="clips per second instead, e.g. 0.5 (= --clip-len 2)")
    parser.add_argument("--frames-per-clip", type=int, help="frames per clip (default: CLIP 1, video models their own)")
    parser.add_argument("--clip-count", choices=CLIP_COUNT_RULES, default="ceil",
                        help="clips = ceil/floor/round(duration / clip_len) (default ceil: keep the partial last clip)")
    parser.add_argument("--format", choices=FEATURE_WRITERS.names(), help="npy (default), npz or hdf5; text mode: npz")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (float16 on CUDA)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips (text: queries) per forward pass")
    parser.add_argument("--num-workers", type=int, default=2, help="background decoding processes (0: none)")
    parser.add_argument("--shard", help="i/n: do the i-th of n parts of the video list (0-based; torchrun sets it)")
    parser.add_argument("--id-map", help="csv with columns path,vid naming the videos (default: file stems)")
    parser.add_argument("--overwrite", action="store_true", help="re-extract videos that are already done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--text", metavar="ANNOTATION", help="text mode: extract query features of this file")
    parser.add_argument("--dataset", help="text mode: annotation format (charades_sta, activitynet, tacos, qvhighlights, native)")
    parser.add_argument("--durations", help="text mode, optional: Charades durations csv/json")
    args = parser.parse_args(argv)
    if args.recipe is not None:
        if args.backbone or args.model or args.text or args.videos is None:
            parser.error("recipe mode needs --videos and takes no --backbone, --model or --text (the recipe fixes them)")
        if args.clip_len or args.fps or args.frames_per_clip or args.format:
            parser.error(f"--recipe {args.recipe} fixes the clip length, frames and format; drop those options")
    elif args.text is None and (args.videos is None or args.backbone is None):
        parser.error("video mode needs --videos and --backbone (or --recipe NAME, or --text ANNOTATION --dataset NAME)")
    elif args.weights:
        parser.error("--weights goes with --recipe; a --backbone loads from --model")
    if args.text is not None and (args.dataset is None or args.videos is not None):
        parser.error("text mode needs --dataset and takes no --videos")
    if args.text is not None and args.format not in (None, "npz"):
        parser.error("text features are always written as <qid>.npz; drop --format")
    if args.fps is not None and not args.fps > 0:
        parser.error("--fps must be positive")
    args.clip_len = 1.0 / args.fps if args.fps is not None else (args.clip_len or 2.0)
    return args


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shard = parse_shard(args.shard)
    if args.recipe is not None:
        from grounding.extract.recipes.run import RecipeExtractConfig, extract_with_recipe

        summary = extract_with_recipe(
            RecipeExtractConfig(
                videos=args.videos, out=args.out, recipe=args.recipe, weights=args.weights, device=args.device,
                batch_size=args.batch_size, shard=shard, id_map=args.id_map, overwrite=args.overwrite,
                progress=not args.no_progress,
            )
        )
    elif args.text is not None:
        summary = extract_text(
            TextExtractConfig(
                annotations=args.text, dataset=args.dataset, model=args.model, out=args.out, durations=args.durations,
                device=args.device, batch_size=args.batch_size, shard=shard, overwrite=args.overwrite,
                progress=not args.no_progress,
            )
        )
    else:
        summary = extract_videos(
            ExtractConfig(
                videos=args.videos, out=args.out, backbone=args.backbone, model=args.model, clip_len=args.clip_len,
                frames_per_clip=args.frames_per_clip, clip_count=args.clip_count, fmt=args.format or "npy",
                device=args.device, batch_size=args.batch_size, num_workers=args.num_workers, shard=shard,
                id_map=args.id_map, overwrite=args.overwrite, progress=not args.no_progress,
            )
        )
    print(summary.text())
    return summary.exit_code
