"""``tools/serve.py`` / ``grounding-serve``: a local web page for grounding sentences in videos."""

from __future__ import annotations

import argparse
import json
import os

from grounding.api.grounder import make_grounder
from grounding.errors import exit_cleanly_on_user_errors


def parse_serve_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A local web page for grounding sentences in videos "
                                     "(page at /, JSON at POST /api/ground).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a training work dir or a checkpoint .pt")
    source.add_argument("--zero-shot", metavar="CLIP_DIR", help="no checkpoint: CLIP text-clip similarity")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only; "
                        "any other address needs --token)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--cache", default="work_dirs/serve_cache", help="the only folder the server writes to")
    parser.add_argument("--videos", help="a folder of videos offered for picking on the page")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest accepted upload (default 200 MB)")
    parser.add_argument("--max-video-minutes", type=float, default=180.0, help="longest accepted video (default 180)")
    parser.add_argument("--max-cache-mb", type=float, default=2048.0,
                        help="all uploads together; the least recently used are deleted past it (default 2048)")
    parser.add_argument("--token", default=os.environ.get("GROUNDING_SERVE_TOKEN"),
                        help="a secret every API call must carry ('Authorization: Bearer TOKEN'; the page: /?token=TOKEN); "
                        "required with a non-local --host (default: $GROUNDING_SERVE_TOKEN)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="a host name the server answers to besides localhost/127.0.0.1 (repeatable)")
    parser.add_argument("--decode-timeout", type=float, default=60.0,
                        help="seconds the sandboxed decoder may take per step before a video is refused (default 60)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbone-dir", help="the feature model folder, where it moved since training")
    parser.add_argument("--recipe-weights", action="append", default=[], metavar="[PART=]PATH",
                        help="a checkpoint trained on recipe features: the recipe's weights (see tools/ground.py)")
    parser.add_argument("--clip-len", type=float, default=2.0, help="zero-shot: seconds per clip (default 2)")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    from grounding.api.access import allowed_hosts_for
    from grounding.api.server import ServerConfig, check_port_free, create_app, run_server

    args = parse_serve_args(argv)
    allowed = allowed_hosts_for(args.host, args.token, args.allow_host)  # refused before the model loads
    check_port_free(args.host, args.port)
    config = ServerConfig(cache_dir=args.cache, videos_dir=args.videos, max_upload_bytes=int(args.max_upload_mb * 2**20),
                          max_cache_bytes=int(args.max_cache_mb * 2**20), max_video_seconds=args.max_video_minutes * 60,
                          decode_timeout=args.decode_timeout, token=args.token, allowed_hosts=allowed)
    grounder = make_grounder(args.model, args.zero_shot, args.device, args.backbone_dir, args.clip_len,
                             args.recipe_weights)
    query = "?token=TOKEN" if args.token else ""  # the secret itself stays out of logs
    print(json.dumps({"url": f"http://{args.host}:{args.port}/{query}", "model": grounder.name}), flush=True)
    run_server(create_app(grounder, config), args.host, args.port)
    return 0
