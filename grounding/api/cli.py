"""Command-line entry points ``grounding-ground`` / ``tools/ground.py`` and ``grounding-serve`` /
``tools/serve.py`` (installed console scripts need their ``main`` inside the package)."""

from __future__ import annotations

import argparse
import json
import sys

from grounding.errors import exit_cleanly_on_user_errors

GROUND_USAGE = """Ground sentences in your own videos.

  grounding-ground --model WORK_DIR_OR_CKPT --video FILE_OR_DIR (--query TEXT | --queries FILE) [--top-k 5]
                   [--json OUT.json] [--html OUT.html]
  grounding-ground --zero-shot CLIP_DIR --video FILE --query TEXT ...

Prints the moments as a table, then every prediction as one JSON list on the last stdout line.
--queries: a text file (one query per line) or a .jsonl of records with 'query' (and 'qid').
"""


def make_grounder(model: str | None, zero_shot: str | None, device: str, backbone_dir: str | None = None,
                  clip_len: float = 2.0):
    from grounding.api.grounder import Grounder

    if zero_shot:
        return Grounder.zero_shot(zero_shot, device=device, clip_len=clip_len)
    return Grounder.from_pretrained(model, device=device, backbone_dir=backbone_dir)  # type: ignore[arg-type]


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
    parser.add_argument("--clip-len", type=float, default=2.0, help="zero-shot: seconds per clip (default 2)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    return args


@exit_cleanly_on_user_errors
def ground_main(argv: list[str] | None = None) -> int:
    from grounding.api import ground_run

    args = parse_ground_args(argv)
    ground_run.check_outputs([args.json, args.html], args.overwrite)
    queries = ground_run.read_queries(args.query, args.queries)
    videos = ground_run.list_video_files(args.video)
    grounder = make_grounder(args.model, args.zero_shot, args.device, args.backbone_dir, args.clip_len)
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


def parse_serve_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A local web page for grounding sentences in videos "
                                     "(page at /, JSON at POST /api/ground).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a training work dir or a checkpoint .pt")
    source.add_argument("--zero-shot", metavar="CLIP_DIR", help="no checkpoint: CLIP text-clip similarity")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--cache", default="work_dirs/serve_cache", help="the only folder the server writes to")
    parser.add_argument("--videos", help="a folder of videos offered for picking on the page")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200 MB)")
    parser.add_argument("--max-video-minutes", type=float, default=180.0, help="longest accepted video (default 180)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbone-dir", help="the feature model folder, where it moved since training")
    parser.add_argument("--clip-len", type=float, default=2.0, help="zero-shot: seconds per clip (default 2)")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def serve_main(argv: list[str] | None = None) -> int:
    from grounding.api.server import ServerConfig, check_port_free, create_app, run_server

    args = parse_serve_args(argv)
    check_port_free(args.host, args.port)
    grounder = make_grounder(args.model, args.zero_shot, args.device, args.backbone_dir, args.clip_len)
    config = ServerConfig(cache_dir=args.cache, videos_dir=args.videos, max_upload_bytes=int(args.max_upload_mb * 2**20),
                          max_video_seconds=args.max_video_minutes * 60)
    print(json.dumps({"url": f"http://{args.host}:{args.port}/", "model": grounder.name}), flush=True)
    run_server(create_app(grounder, config), args.host, args.port)
    return 0
