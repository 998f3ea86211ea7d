"""Compare a feature recipe with its reference pipeline on one video (docs/features.md, "Recipes").

    python tools/compare_recipe.py --recipe qvh_slowfast_clip --video ../shared/videos/charades_sample.mp4 \\
        --reference /work/ref/HERO_Video_Feature_Extractor [--openai-clip-model .../clip/model.py] [--clips 2] \\
        [--json report.json]

Needs the reference checkout and its packages (ffmpeg-python, fvcore, pandas; run it with a separate
environment's python, e.g. /work/ref/venv/bin/python); fetches nothing. Prints the report as JSON (last line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="qvh_slowfast_clip", choices=["qvh_slowfast_clip"])
    parser.add_argument("--video", required=True, help="the video to compare on")
    parser.add_argument("--reference", required=True, help="checkout of linjieli222/HERO_Video_Feature_Extractor")
    parser.add_argument("--openai-clip-model", help="clip/model.py of the openai-clip package (CLIP output parity)")
    parser.add_argument("--clips", type=int, default=2, help="SlowFast clips whose R50 outputs are compared (default 2; 0: frames and inputs only)")
    parser.add_argument("--json", help="also write the report here")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    import torch

    from grounding.extract.recipes.parity import compare_qvh_slowfast_clip

    args = parse_args(argv)
    torch.set_num_threads(1)
    if args.clips < 0:
        raise GroundingError("--clips must be 0 (frames and inputs only) or more")
    report = compare_qvh_slowfast_clip(args.video, args.reference, args.clips, args.openai_clip_model)
    text = json.dumps(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(text, file=sys.stdout)
    return 0
