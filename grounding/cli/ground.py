"""``tools/ground.py`` / ``grounding-ground``: ground sentences in video files, print a table, write JSON/HTML."""

from __future__ import annotations

import argparse
import json
import sys

from grounding.api.grounder import make_grounder
from grounding.errors import exit_cleanly_on_user_errors

GROUND_USAGE = """Ground sentences in your own videos.

  grounding-ground --model WORK_DIR_OR_CKPT --video FILE_OR_DIR (--query TEXT | --queries FILE) [--top-k 5]
                   [--json OUT.json] [--html OUT.html]
  grounding-ground --zero-shot CLIP_DIR --video FILE --query TEXT ...

Prints the moments as a table, then every prediction as one JSON list on the last stdout line.
--queries: a text file (one query per line) or a .jsonl of records with 'query' (and 'qid').
"""


def parse_ground_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=GROUND_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a training work dir (its best.pt, else last.pt) or a checkpoint .pt")
    source.add_argument("--zero-shot", metavar="CLIP_DIR", help="no checkpoint: CLIP text-clip similarity")
    parser.add_argument("--video", required=True, help="a video file or a folder of videos")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--query", help="one sentence")
    text.add_argument("--queries", help="a text file (one query per line) or .jsonl with 'query' fields")
    parser.add_argument("--top-k", type=int, default=5, help="moments per query (default 5)")
    parser.add_argument("--json", help="write the predictions here (a JSON list)")
    parser.add_argument("--html", help="write a self-contained HTML report here")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --json/--html files")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backbone-dir", help="the feature model folder, where it moved since training")
    parser.add_argument("--recipe-weights", action="append", default=[], metavar="[PART=]PATH",
                        help="a checkpoint trained on recipe features (e.g. qvh_slowfast_clip): the recipe's weights, "
                             "a folder holding every part's or PART=PATH each (default: the paths recorded at training)")
    parser.add_argument("--clip-len", type=float, default=2.0, help="zero-shot: seconds per clip (default 2)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    return args


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    from grounding.api import ground_run
    from grounding.data.records import queries_from_args

    args = parse_ground_args(argv)
    ground_run.check_outputs([args.json, args.html], args.overwrite)
    queries = queries_from_args(args.query, args.queries)
    videos = ground_run.list_video_files(args.video)
    grounder = make_grounder(args.model, args.zero_shot, args.device, args.backbone_dir, args.clip_len,
                             args.recipe_weights)
    results = ground_run.ground_all(grounder, videos, queries, args.top_k)
    for _, preds in results:
        for pred in preds:
            for warning in pred.get("warnings", []):
                print(f"warning: '{pred['query'][:60]}': {warning}", file=sys.stderr)
    ground_run.write_outputs(results, args.json, args.html, f"Grounding: {grounder.name}")
    print(ground_run.table(results))
    if args.json:
        print(f"predictions: {args.json}")
    if args.html:
        print(f"report: {args.html}")
    print(json.dumps([pred for _, preds in results for pred in preds]))
    return 0


