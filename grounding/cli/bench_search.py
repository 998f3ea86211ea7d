"""Scale of moment search on this machine (see grounding/search/bench.py); the last stdout line is JSON.

    python tools/bench_search.py [--sizes 1000 10000 100000] [--kinds flat ivf] [--queries 200] [--threads 1]
    python tools/bench_search.py --recall-index INDEX_DIR --recall-queries Q.jsonl [--nprobe 16]

The second form measures the approximate structure's recall against exact search for real sentences
embedded by the index's model, among the index's real entries (``grounding.search.bench.recall_on_queries``).
"""

from __future__ import annotations

import argparse
import json

from grounding.errors import exit_cleanly_on_user_errors


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    from grounding.search.bench import recall_on_queries, run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="library sizes (videos)")
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf"], choices=("flat", "ivf"))
    parser.add_argument("--queries", type=int, default=200, help="queries timed per size (stage 1 + 2: a quarter)")
    parser.add_argument("--nprobe", type=int, default=16, help="IVF lists scanned per query")
    parser.add_argument("--threads", type=int, default=1, help="torch and FAISS threads (default 1)")
    parser.add_argument("--recall-index", help="an index built by a trained model: measure IVF recall on real queries")
    parser.add_argument("--recall-queries", help="with --recall-index: JSONL records (query) or one sentence a line")
    args = parser.parse_args(argv)
    if args.recall_index:
        from grounding.data.records import queries_from_args
        from grounding.errors import GroundingError

        if not args.recall_queries:
            raise GroundingError("--recall-index needs --recall-queries Q.jsonl (the sentences to embed)")

        sentences = [item["query"] for item in queries_from_args(None, args.recall_queries)]
        result = recall_on_queries(args.recall_index, sentences, nprobe=args.nprobe)
        print(json.dumps(result))
        return 0
    rows = run(args.sizes, args.kinds, args.queries, args.nprobe, args.threads)
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    print(json.dumps(rows))
    return 0
