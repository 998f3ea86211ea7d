"""``tools/upgrade_index.py`` / ``grounding-upgrade-index``: move an index to a new model without re-indexing it at once.

    python tools/upgrade_index.py --index INDEX_DIR --adapter ADAPTER.pt
    python tools/upgrade_index.py --index INDEX_DIR --backfill --checkpoint NEW_CKPT [--order random|uncertainty] [--fraction F]
    python tools/upgrade_index.py --index INDEX_DIR --make-adapter ADAPTER.pt --checkpoint NEW_CKPT --config CONFIG [--split train]

--adapter maps the stored old embeddings into the new model's space (no video is read). --backfill
re-embeds videos with the new model, a chunk per commit, in the given order, until the fraction F of the
library is new; the index answers queries all along and a rerun resumes. --make-adapter trains the
forward adapter from the index's model to NEW_CKPT on a split's videos. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="the index folder")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--adapter", help="apply this forward adapter to the stored embeddings")
    how.add_argument("--backfill", action="store_true", help="re-embed videos with --checkpoint")
    how.add_argument("--make-adapter", metavar="OUT", help="train a forward adapter to --checkpoint, save it here")
    parser.add_argument("--checkpoint", help="the new model (work dir or .pt)")
    parser.add_argument("--order", default="random", choices=("random", "uncertainty"))
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the library new after the backfill")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", help="--make-adapter: the config whose data the adapter is trained on")
    parser.add_argument("--split", default="train", help="--make-adapter: the split's videos (default train)")
    parser.add_argument("--epochs", type=int, default=30, help="--make-adapter: training epochs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", help="--make-adapter: config overrides")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from grounding.search import upgrade

    if args.adapter:
        models = upgrade.apply_adapter(args.index, args.adapter, progress=not args.no_progress)
        print(json.dumps({"index": args.index, "adapted_with": args.adapter, "entries_by_model": models}))
        return 0
    if not args.checkpoint:
        raise GroundingError("--backfill and --make-adapter need --checkpoint NEW_CKPT")
    from grounding.search.model import SearchModel

    new = SearchModel.load(args.checkpoint, args.device)
    if args.backfill:
        report = upgrade.backfill(args.index, new, args.order, args.fraction, args.seed, progress=not args.no_progress)
        print(f"{report.done} of {report.total} videos embedded by {new.path} ({report.done / max(report.total, 1):.0%})")
        print(json.dumps({"index": args.index, "backfilled": report.done, "videos": report.total,
                          "entries_by_model": report.models}))
        return 0
    if not args.config:
        raise GroundingError("--make-adapter needs --config (the data the adapter is trained on)")
    from grounding.config import load_config
    from grounding.data.build import build_feature_bank, load_split_records
    from grounding.search.embed import Granularity
    from grounding.search.index import MomentIndex
    from grounding.synthetic.prepare import ensure_synthetic_data

    index = MomentIndex.open(args.index)
    embedded = [m for m in index.models if m["kind"] == "embedded" and m["id"] in index.live_models()]
    if not embedded:
        raise GroundingError(f"index {args.index} holds no entry embedded by a model; nothing to adapt from")
    old = SearchModel.load(embedded[0]["checkpoint"], args.device)
    cfg = load_config(args.config, args.overrides)
    ensure_synthetic_data(cfg)
    records = load_split_records(cfg.data, args.split)
    videos = {r.vid: float(r.duration) for r in records}
    bank = build_feature_bank(cfg.data, new.loaded.config["model"].get("video_dim"))
    granularity = Granularity(index.settings.get("granularity", "proposals"),
                              index.settings.get("scales", [0.125, 0.25, 0.5, 1.0]), index.settings.get("stride", 0.5))
    history = upgrade.make_adapter(old, new, [bank.get(v) for v in videos], list(videos.values()), granularity,
                                   Path(args.make_adapter), epochs=args.epochs, seed=args.seed)
    print(f"adapter {old.fingerprint} -> {new.fingerprint} trained on {len(videos)} videos of '{args.split}' "
          f"(loss {history[0]:.4f} -> {history[-1]:.4f}); apply it with --adapter {args.make_adapter}")
    print(json.dumps({"adapter": args.make_adapter, "from": old.fingerprint, "to": new.fingerprint,
                      "loss": [history[0], history[-1]]}))
    return 0
