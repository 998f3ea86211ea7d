"""``tools/search.py`` / ``grounding-search``: find moments in an indexed video library.

    python tools/search.py --index INDEX_DIR [--checkpoint CKPT] (--query TEXT | --queries FILE.jsonl)
                           [--top-k 100] [--rerank 20] [--max-per-video 1] [--merge videos|window|video] --out PRED.jsonl

Stage 1 ranks the library in the shared embedding space; stage 2 localises the top ``--rerank`` videos
with CCMAN (``--rerank 0``: stage 1 only); ``--max-per-video N`` keeps at most N moments of one video in
the list, so that look-alike videos get a place in the top K. One line per query: ``{"qid", "query", "pred_moments":
[[vid, start_s, end_s, score], ...]}``. ``--query`` without ``--out`` prints the moments. The last stdout
line is JSON. Score the file with ``tools/eval_grounding.py --task vcmr``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="an index folder (tools/build_index.py --out)")
    parser.add_argument("--checkpoint", help="the query model (default: the one that built the index)")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--query", help="one sentence")
    text.add_argument("--queries", help="JSONL records (qid, query; other keys ignored) or a text file, one query a line")
    parser.add_argument("--top-k", type=int, help="moments per query (default: search.top_k of the index, 100)")
    parser.add_argument("--rerank", type=int, help="videos localised by stage 2 (default 20; 0 = stage 1 only)")
    parser.add_argument("--max-per-video", type=int, help="moments of one video in a query's top K (default: "
                        "search.max_per_video of the index, 1; 0 = no limit)")
    parser.add_argument("--merge", choices=["videos", "window", "video"],
                        help="how stage 2 ranks across videos: stage 1 orders the videos and the decoder only a "
                             "video's own windows (videos), or each window scored by its own similarity (window) or its "
                             "video's best entry (video) times the decoder's score; default: search.merge of the index")
    parser.add_argument("--out", help="predictions JSONL")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--batch-queries", type=int, default=64, help="queries searched together")
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.queries and not args.out:
        raise GroundingError("--queries needs --out PRED.jsonl")
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise GroundingError(f"{args.out} exists; pass --overwrite to replace it")
    from grounding.data.records import queries_from_args, write_jsonl
    from grounding.search.searcher import Searcher

    items = queries_from_args(args.query, args.queries)
    searcher = Searcher.from_index(args.index, args.checkpoint, args.device, merge=args.merge)
    start, results = time.perf_counter(), []
    for first in range(0, len(items), args.batch_queries):
        chunk = items[first:first + args.batch_queries]
        found = searcher.search([item["query"] for item in chunk], args.top_k, args.rerank, args.max_per_video)
        results += [{"qid": item["qid"], **r} for item, r in zip(chunk, found, strict=True)]
    seconds = time.perf_counter() - start
    rerank = searcher.settings.rerank if args.rerank is None else args.rerank
    per_video = searcher.settings.max_per_video if args.max_per_video is None else args.max_per_video
    if args.out:
        write_jsonl(results, args.out)
        print(f"{len(results)} queries searched in {seconds:.1f} s (stage {'1 + 2' if rerank else '1'}); "
              f"predictions in {args.out}")
    else:
        for vid, s, e, score in results[0]["pred_moments"][:10]:
            print(f"{vid:>20} {s:8.2f} {e:8.2f}  {score:.4f}")
    print(json.dumps({"queries": len(results), "out": args.out, "rerank": rerank, "max_per_video": per_video,
                      "seconds": round(seconds, 3),
                      **({} if args.out else {"pred_moments": results[0]["pred_moments"]})}))
    return 0
