"""``tools/build_index.py`` / ``grounding-build-index``: index a video library for moment search.

    python tools/build_index.py --config CONFIG --checkpoint CKPT --out INDEX_DIR [--split test | --features DIR]
                                [--durations FILE] [--remove VID ...] [--overwrite] [key=value ...]

Embeds every video of ``--split`` (default: the config's first evaluation split) or every ``<vid>.npy`` /
``<vid>.npz`` of ``--features`` through the checkpoint's video side (search.* settings of the config:
granularity, index kind). Rerunning on the same --out resumes a build that stopped, or adds new videos;
``--remove`` takes videos out. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the index folder (created, resumed, or extended)")
    parser.add_argument("--config", help="YAML config: where the features are (data.*) and search.* settings")
    parser.add_argument("--checkpoint", help="a trained CCMAN (work dir or .pt)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--split", help="index the videos of this split (default: the first evaluation split)")
    source.add_argument("--features", help="index every <vid>.npy / <vid>.npz of this folder")
    source.add_argument("--remove", nargs="+", metavar="VID", help="take these videos out of the index")
    parser.add_argument("--durations", help="with --features: CSV id,length or JSON {vid: seconds}")
    parser.add_argument("--clip-seconds", type=float, default=1.0,
                        help="with --features and no --durations: seconds per native clip (default 1)")
    parser.add_argument("--batch-videos", type=int, default=32, help="videos per forward pass")
    parser.add_argument("--commit-every", type=int, default=512, help="videos per committed segment")
    parser.add_argument("--overwrite", action="store_true", help="replace an index that --out already holds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. search.granularity=both")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.remove:
        from grounding.search.build import remove_videos

        left, missing = remove_videos(args.out, args.remove)
        if missing:
            print(f"not in the index (nothing removed): {', '.join(missing)}")
        print(json.dumps({"index": args.out, "removed": len(args.remove) - len(missing), "videos": left}))
        return 0
    if not (args.config and args.checkpoint):
        raise GroundingError("building an index needs --config and --checkpoint")
    from grounding.config import load_config, to_plain
    from grounding.data.build import build_feature_bank, load_split_records
    from grounding.engine.settings import Splits
    from grounding.search.build import LibraryVideo, build_index, folder_library, source_spec
    from grounding.search.embed import Granularity
    from grounding.search.model import SearchModel
    from grounding.synthetic.prepare import ensure_synthetic_data

    cfg = load_config(args.config, args.overrides)
    model = SearchModel.load(args.checkpoint, args.device)
    search = to_plain(cfg.get("search") or {})
    data_cfg = to_plain(cfg.data)
    if args.features:
        videos, fmt = folder_library(Path(args.features), Path(args.durations) if args.durations else None,
                                     args.clip_seconds)
        data_cfg.update(root=str(Path(args.features).resolve()), features=".", feature_format=fmt, feature_key=None)
    else:
        ensure_synthetic_data(cfg)
        split = args.split or Splits.from_config(cfg).evaluate[0]
        records = load_split_records(cfg.data, split)
        videos = list({r.vid: LibraryVideo(r.vid, float(r.duration)) for r in records}.values())
    bank = build_feature_bank(data_cfg, model.loaded.config["model"].get("video_dim"))
    report = build_index(model, args.out, videos, bank.get, source_spec(data_cfg), Granularity.from_config(search),
                         search.get("index"), {k: v for k, v in search.items() if k not in ("index",)},
                         args.batch_videos, args.commit_every, args.overwrite, not args.no_progress)
    print(report.summary())
    print(json.dumps({"index": args.out, "added": report.added, "already": report.already,
                      "skipped": sorted(report.skipped), "entries": report.entries, "kind": report.kind}))
    return 0
