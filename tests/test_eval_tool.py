"""tools/eval_grounding.py standalone mode, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "eval_grounding.py"

pytestmark = pytest.mark.slow  # every test runs the tool as a subprocess


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.fixture
def gt_file(tmp_path: Path) -> Path:
    rows = [
        {"qid": q, "query": f"q{q}", "vid": f"v{q}", "duration": 30.0, "relevant_windows": [w]}
        for q, w in [(1, [0, 10]), (2, [5, 15]), (3, [0, 4])]
    ]
    return write_jsonl(tmp_path / "gt.jsonl", rows)


def pred(qid, *windows) -> dict:
    return {
        "qid": qid,
        "vid": f"v{qid}",
        "query": f"q{qid}",
        "pred_relevant_windows": [list(w) for w in windows],
    }


def test_last_line_is_the_metrics_json(tmp_path, gt_file):
    rows = [pred(1, (0, 10, 0.9)), pred(2, (20, 30, 0.9), (5, 15, 0.1)), pred(3, (0, 2, 1))]
    preds = write_jsonl(tmp_path / "p.jsonl", rows)
    out = run_tool("--predictions", str(preds), "--ground-truth", str(gt_file))
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["R1@0.7"] == pytest.approx(100 / 3) and metrics["R5@0.7"] == pytest.approx(200 / 3)
    assert metrics["R1@0.5"] == pytest.approx(200 / 3)  # query 3: [0, 2] vs [0, 4] is exactly 0.5
    assert metrics["mIoU"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    assert metrics["num_queries"] == 3 and metrics["num_missing"] == 0
    summary = out.stdout.splitlines()[:-1]  # a human summary comes first
    assert "3 queries, 0 without a prediction" in summary[0] and any("R1@0.5" in line for line in summary)


def test_missing_predictions_are_reported_and_scored_as_misses(tmp_path, gt_file):
    preds = write_jsonl(tmp_path / "p.jsonl", [pred(1, (0, 10, 0.9))])
    out = run_tool("--predictions", str(preds), "--ground-truth", str(gt_file))
    assert out.returncode == 0, out.stderr
    assert "2 without a prediction" in out.stdout
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["num_missing"] == 2 and metrics["R1@0.1"] == pytest.approx(100 / 3)


def test_duplicate_qid_is_a_one_line_error(tmp_path, gt_file):
    preds = write_jsonl(tmp_path / "dup.jsonl", [pred(1, (0, 10, 0.9)), pred(1, (0, 5, 0.9))])
    out = run_tool("--predictions", str(preds), "--ground-truth", str(gt_file))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "dup.jsonl" in out.stderr and "qid(s) 1 appear more than once" in out.stderr


def test_unknown_qid_is_an_error(tmp_path, gt_file):
    preds = write_jsonl(tmp_path / "p.jsonl", [pred(1, (0, 10, 0.9)), pred(42, (0, 5, 0.9))])
    out = run_tool("--predictions", str(preds), "--ground-truth", str(gt_file))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "not in" in out.stderr and "42" in out.stderr


def test_multi_window_ground_truth_gets_qvhighlights_metrics(tmp_path):
    gt = write_jsonl(
        tmp_path / "gt.jsonl",
        [{"qid": 1, "query": "q", "vid": "v", "duration": 150, "relevant_windows": [[0, 10], [20, 30]]}],
    )
    preds = write_jsonl(tmp_path / "p.jsonl", [pred(1, (0, 10, 0.9), (20, 30, 0.5))])
    out = run_tool("--predictions", str(preds), "--ground-truth", str(gt))
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["brief"]["MR-full-mAP"] == 100.0 and metrics["brief"]["MR-short-mAP"] == 100.0
    forced = run_tool("--predictions", str(preds), "--ground-truth", str(gt), "--dataset", "charades_sta")
    assert json.loads(forced.stdout.strip().splitlines()[-1])["R1@0.7"] == 100.0


def test_checkpoint_mode_with_a_missing_checkpoint_is_one_clear_line(tmp_path):
    out = run_tool(
        "--config", "configs/synthetic.yaml", "--checkpoint", str(tmp_path / "m.pt"), "--split", "test",
        "--out", str(tmp_path / "p.jsonl"),
    )
    assert out.returncode == 2 and "m.pt does not exist" in out.stderr
    assert "Traceback" not in out.stderr
