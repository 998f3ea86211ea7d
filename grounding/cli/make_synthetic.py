"""Write the built-in synthetic benchmark to a folder, in the Charades-STA layout (default), the
QVHighlights layout (several windows per query, graded saliency scores, 2 s clips) or the long-video
layout (TACoS / ActivityNet-like: long videos, short moments, many look-alike events).

    python tools/make_synthetic.py --out data/synthetic [--train-videos 1000 --test-videos 300 --seed 0 ...]
    python tools/make_synthetic.py --out data/synthetic_qvh --layout qvhighlights [--text-features]
    python tools/make_synthetic.py --out data/synthetic_long --layout long   # 128-256 s videos, short events

It prints the shortcut audit (``grounding.synthetic.shortcuts``): what video-free predictors reach per query
tag (and, for the QVHighlights layout, the highlight metrics of video-free saliency scores). Then train
on it with the real config of that layout (printed last). ``--text-features`` also writes per-query token
features (``<out>/text_features/<qid>.npz``, ``grounding.synthetic.text_features``): CLIP-like text for the
DETR ports and the parity runs (``text.input=precomputed text.root=<out>/text_features``).
"""

from __future__ import annotations

import argparse
import dataclasses

from grounding.errors import exit_cleanly_on_user_errors
from grounding.synthetic import LAYOUT_DEFAULTS, LAYOUTS, SyntheticSpec, write_synthetic
from grounding.synthetic.shortcuts import LAYOUT_FORMATS, audit_synthetic_folder, format_audit
from grounding.synthetic.text_features import write_text_features


def _arg(field: dataclasses.Field) -> dict:
    """argparse keywords of one spec field; a field that defaults per layout takes the layout's type."""
    if field.name == "layout":
        return {"choices": LAYOUTS, "default": field.default, "help": f"file layout (default {field.default})"}
    if field.default is None:
        per_layout = ", ".join(f"{layout} {values[field.name]}" for layout, values in LAYOUT_DEFAULTS.items())
        return {"type": type(LAYOUT_DEFAULTS["charades"][field.name]), "default": None,
                "help": f"(default per layout: {per_layout})"}
    return {"type": type(field.default), "default": field.default, "help": f"(default {field.default})"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (annotations/, features/)")
    parser.add_argument("--overwrite", action="store_true", help="replace a folder that is not a synthetic benchmark")
    parser.add_argument("--text-features", action="store_true",
                        help="also write per-query token features to <out>/text_features (text.input=precomputed)")
    for field in dataclasses.fields(SyntheticSpec):
        parser.add_argument(f"--{field.name.replace('_', '-')}", **_arg(field))
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSpec)})
    counts = write_synthetic(args.out, spec, overwrite=args.overwrite)
    held_out = LAYOUT_FORMATS[spec.layout][1]
    print(f"synthetic benchmark ({spec.layout} layout) in {args.out}: {counts['train']} train / "
          f"{counts[held_out]} {held_out} queries")
    print(f"shortcut audit: R1@0.5 (%) on the {held_out} split of predictors that never see the video "
          "(keyword_occurrence: % of relational queries whose occurrence a keyword-only rule picks)")
    print(format_audit(audit_synthetic_folder(args.out)))
    if args.text_features:
        print(f"per-query text features: text.input=precomputed +text.root={write_text_features(args.out)}")
    # data.synthetic=null: train on this folder as it is (the config's own spec would rewrite it)
    config, extra = {"charades": ("configs/charades_sta.yaml", ""),
                     "qvhighlights": ("configs/synthetic_qvh.yaml", " data.synthetic=null"),
                     "long": ("configs/synthetic_long.yaml", " data.synthetic=null")}[spec.layout]
    print(f"train: python tools/train_grounding.py --config {config} --work-dir work_dirs/syn "
          f"data.root={args.out} model.video_dim={spec.feature_dim}{extra}")
    return 0
