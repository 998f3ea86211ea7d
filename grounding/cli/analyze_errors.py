"""Error analysis of a run on a synthetic benchmark: on which event each top-1 window lands (hit, boundary
error, wrong occurrence of the named event, the reference event, a look-alike, another event, no event),
per query tag; optionally (--figures N) TensorBoard figures of each stage's attention and focus for such
queries, and each stage's mean per-clip score on every event role (target, other occurrences, reference...).

    python tools/analyze_errors.py --work-dir work_dirs/syn [--split test] [--figures 8 --tag temporal]
    python tools/analyze_errors.py --predictions preds.jsonl --data work_dirs/synthetic_data [--split test]

The classes are defined in grounding/synthetic/error_analysis.py. The last stdout line is JSON (the summary).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grounding.errors import GroundingError, exit_cleanly_on_user_errors
from grounding.synthetic.error_analysis import analyse_folder, format_summary, summarise, to_jsonable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", help="a training work dir: its config.yaml (data.root), predictions and checkpoint")
    parser.add_argument("--predictions", help="predictions JSONL (default: WORK_DIR/predictions_<split>.jsonl)")
    parser.add_argument("--data", help="the synthetic benchmark folder (default: data.root of WORK_DIR/config.yaml)")
    parser.add_argument("--split", help="split to analyse (default: the layout's held-out split)")
    parser.add_argument("--json", help="also write every query's diagnosis and the summary here")
    parser.add_argument("--figures", type=int, default=0, help="TensorBoard figures of this many queries (needs --work-dir)")
    parser.add_argument("--tag", default="temporal", help="which queries get figures (default temporal: relational)")
    parser.add_argument("--tb", help="TensorBoard folder for the figures (default WORK_DIR/tb/errors)")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from grounding.config import load_config
    from grounding.synthetic.shortcuts import LAYOUT_FORMATS, synthetic_layout

    work = Path(args.work_dir) if args.work_dir else None
    cfg = load_config(work / "config.yaml", []) if work is not None else None
    data = args.data or (str(cfg.data.root) if cfg is not None else None)
    if data is None:
        raise GroundingError("give --work-dir, or --predictions with --data")
    split = args.split or LAYOUT_FORMATS[synthetic_layout(data)][1]
    predictions = args.predictions or (str(work / f"predictions_{split}.jsonl") if work is not None else None)
    if predictions is None or not Path(predictions).is_file():
        raise GroundingError(f"no predictions file {predictions}; give --predictions or train into --work-dir first")
    diagnoses = analyse_folder(data, predictions, split)
    summary = summarise(diagnoses)
    print(f"error analysis of {predictions} on {data} ({split}, {len(diagnoses)} queries), percent of each tag's queries:")
    print(format_summary(summary))
    if args.figures > 0:
        if work is None or cfg is None:
            raise GroundingError("--figures runs the trained model: give --work-dir")
        from grounding.inference.checkpoint import resolve_checkpoint
        from grounding.studies.error_figures import draw_error_figures, pick_for_figures, scores_by_role
        from grounding.synthetic.error_analysis import read_predictions, replayed_events
        from grounding.synthetic.shortcuts import read_split

        cfg.data.root = data
        tb = Path(args.tb) if args.tb else work / "tb" / "errors"
        _, sides = read_split(Path(data), synthetic_layout(data), split)
        written = draw_error_figures(cfg, resolve_checkpoint(work), split, pick_for_figures(diagnoses, args.tag, args.figures),
                                     read_predictions(predictions), replayed_events(data), sides, tb)
        print(f"{written} figures of '{args.tag}' queries in {tb} (tensorboard --logdir {tb})")
        qids = [d.qid for d in diagnoses if args.tag in d.tags]
        by_role = scores_by_role(cfg, resolve_checkpoint(work), split, qids, replayed_events(data), sides)
        roles = ["target", "occurrence", "reference", "shares_word", "other", "gap"]
        print(f"mean per-clip score by event role, over the clips of all {len(qids)} '{args.tag}' queries:")
        print(f"{'curve':<18}" + "".join(f"{r:>12}" for r in roles))
        for name, values in by_role.items():
            print(f"{name:<18}" + "".join(f"{values[r]:12.3f}" if r in values else f"{'-':>12}" for r in roles))
        summary["by_role"] = by_role  # type: ignore[assignment]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"summary": summary, "queries": to_jsonable(diagnoses)}, indent=1))
    print(json.dumps(summary))
    return 0
