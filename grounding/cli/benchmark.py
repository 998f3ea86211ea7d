"""Measure training/inference/data-loading/metric/extraction speed at each benchmark's real shapes.

    python tools/benchmark.py --device cpu [--shapes charades_sta ...] [--out bench.json] [--quick]
    python tools/benchmark.py --device cuda --sections train infer --train-modes eager compiled \
        --out work_dirs/bench_gpu.json --markdown work_dirs/bench_gpu.md       # what `make bench-gpu` runs

Prints a Markdown table and writes the raw numbers as JSON (median and min..max over repeats), with the
peak memory of each section: allocated tensors on a GPU, the resident set on the CPU
(``grounding.timing.PeakMemory``). ``--train-modes eager compiled`` measures training both ways (a
``train compiled q/s`` column); ``--tiny`` shrinks every shape to 16-d features, 8 clips and 5 words (a
check that a command runs end to end, e.g. the GPU command on a CPU; its speeds mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from grounding.bench import harness as bench
from grounding.errors import GroundingError, exit_cleanly_on_user_errors

SECTIONS = ["train", "infer", "data", "metrics", "extract"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shapes", nargs="+", default=[s.name for s in bench.SHAPES])
    parser.add_argument("--sections", nargs="+", default=SECTIONS, choices=SECTIONS)
    parser.add_argument("--models", nargs="+", default=bench.MODEL_NAMES, choices=bench.MODEL_NAMES)
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 32 on CPU, 256 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model in the training measurement (the same as --train-modes compiled)")
    parser.add_argument("--train-modes", nargs="+", default=None, choices=["eager", "compiled"],
                        help="training measured eager, compiled or both (default: eager, or compiled with --compile)")
    parser.add_argument("--tiny", action="store_true",
                        help="every shape at 16-d features, 8 clips, 5 words: an end-to-end check, not a measurement")
    parser.add_argument("--markdown", default=None, help="write the table here too")
    parser.add_argument("--compile-inference", action="store_true",
                        help="torch.compile (weights frozen) the model in the inference measurement; ~45 s per shape on a CPU")
    parser.add_argument("--quick", action="store_true", help="fewer steps (what `make bench` runs)")
    parser.add_argument("--out", default=None, help="write the raw results as JSON here")
    return parser.parse_args(argv)


def memory_cell(result: dict) -> str:
    """``peak (+added)`` MB of one section, ``-`` when it was not measured."""
    if result.get("peak_memory_mb") is None:
        return "-"
    added = result.get("memory_added_mb")
    return f"{result['peak_memory_mb']:.0f}" + ("" if added is None else f" (+{added:.0f})")


def _sections(results: dict) -> Iterator[dict]:
    for per_model in results.get("shapes", {}).values():
        for name, r in per_model.items():
            yield from ([r] if name == "data" else [r.get("train", {}), r.get("infer", {})])
    yield from (results[k] for k in ("metrics", "extract") if k in results)


def memory_note(results: dict) -> str:
    """What the memory figures count (the first section that measured memory says)."""
    measured = next((s for s in _sections(results) if s.get("memory_kind")), None)
    if measured is None:
        return ""
    scope = ("its own peak" if measured.get("memory_scope") == "section"
             else "the process's peak so far (this system cannot reset it)")
    return (f"\nmemory: peak {measured['memory_kind']} in MB during each section ({scope}); "
            "(+N): above what the process held when the section began")


def _rate(result: dict) -> str:
    """``median (min..max)`` queries/s of one training measurement."""
    q = result.get("queries_per_s", {})
    return f"{q.get('median', float('nan')):.0f} ({q.get('min', float('nan')):.0f}..{q.get('max', float('nan')):.0f})"


def table(results: dict) -> str:
    both = any("train" in r and "train_compiled" in r for per_model in results.get("shapes", {}).values()
               for r in per_model.values())
    lines = ["| shape | model | train q/s | " + ("train compiled q/s | " if both else "") + "infer q/s | latency ms | "
             "data cold/warm/tensorized q/s | peak MB train / infer / data |",
             "|---|---|---|" + ("---|" if both else "") + "---|---|---|---|"]
    for shape, per_model in results.get("shapes", {}).items():
        data = per_model.get("data", {})
        data_cell = "-"
        if data:
            data_cell = f"{data['cold_queries_per_s']:.0f} / {data['warm_queries_per_s']:.0f}"
            if "tensorized_queries_per_s" in data:
                data_cell += f" / {data['tensorized_queries_per_s']:.0f}"
        for model, r in per_model.items():
            if model == "data":
                continue
            train = r.get("train", {}).get("queries_per_s", {})
            infer = r.get("infer", {})
            memory = " / ".join(memory_cell(r.get(k, {})) for k in ("train", "infer")) + f" / {memory_cell(data)}"
            compiled = f"{_rate(r.get('train_compiled', {}))} | " if both else ""
            lines.append(
                f"| {shape} | {model} | {train.get('median', float('nan')):.0f} "
                f"({train.get('min', float('nan')):.0f}..{train.get('max', float('nan')):.0f}) | {compiled}"
                f"{infer.get('queries_per_s', {}).get('median', float('nan')):.0f} | "
                f"{infer.get('latency_ms', {}).get('median', float('nan')):.1f} | {data_cell} | {memory} |"
            )
    if "metrics" in results:
        m = results["metrics"]
        lines.append(f"\nmetrics (R@n, mIoU) on {m['queries']} queries: {m['ms']['median']:.1f} ms, "
                     f"peak MB {memory_cell(m)}")
    if "extract" in results:
        e = results["extract"]
        lines.append(f"extraction, CLIP-B/32-sized: {e['clips_per_s']:.1f} clips/s, {e['videos_per_s']:.2f} videos/s, "
                     f"peak MB {memory_cell(e)} (decoding workers not counted)")
    lines.append(memory_note(results))
    return "\n".join(lines).rstrip()


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise GroundingError("--device cuda but no CUDA device is visible")
    device = torch.device(args.device)
    shapes = {s.name: (dataclasses.replace(s, video_dim=16, clips=8, words=5) if args.tiny else s) for s in bench.SHAPES}
    unknown = set(args.shapes) - set(shapes)
    if unknown:
        raise GroundingError(f"unknown shape(s) {sorted(unknown)}; choose from {sorted(shapes)}")
    batch = args.batch or (32 if args.device == "cpu" else 256)
    steps = 2 if args.quick else 5
    modes = args.train_modes or (["compiled"] if args.compile else ["eager"])
    results: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
                     "threads": torch.get_num_threads(), "torch": torch.__version__, "shapes": {}}
    for name in args.shapes:
        shape, row = shapes[name], {}
        for model in args.models:
            row[model] = {}
            if "train" in args.sections:
                for mode in modes:
                    key = "train" if mode == "eager" or modes == ["compiled"] else "train_compiled"
                    row[model][key] = bench.bench_training(shape, model, device, batch, steps, args.repeats,
                                                           compile=mode == "compiled")
            if "infer" in args.sections:
                row[model]["infer"] = bench.bench_inference(shape, model, device, 4 * batch, args.repeats,
                                                              compile=args.compile_inference)
            print(f"{name} {model}: {json.dumps(row[model])}", file=sys.stderr)
        if "data" in args.sections:
            row["data"] = bench.bench_data_pipeline(shape, 40 if args.quick else 200, 4, batch, device)
        results["shapes"][name] = row
    if "metrics" in args.sections:
        results["metrics"] = bench.bench_metrics()
    if "extract" in args.sections:
        results["extract"] = bench.bench_extraction(args.device, num_videos=1 if args.quick else 4)
    results["train_modes"], results["tiny"] = modes, args.tiny
    text = table(results)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text + "\n")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    return 0
