import json
import subprocess
import sys
from pathlib import Path

import pytest

from grounding.data.annotations import read_annotations, read_charades_sta, read_durations, read_tacos
from grounding.data.records import MomentRecord, clean_records, read_native_jsonl, write_jsonl
from grounding.errors import GroundingError

REPO = Path(__file__).resolve().parents[1]

# DESIGN.md section 3: the published query counts
REAL_FILES = [
    ("charades_sta", "charades_sta/charades_sta_train.txt", "charades_sta/Charades_v1_train.csv", 12408),
    ("charades_sta", "charades_sta/charades_sta_test.txt", "charades_sta/Charades_v1_test.csv", 3720),
    ("activitynet", "activitynet_captions/train.json", None, 37421),
    ("activitynet", "activitynet_captions/val_1.json", None, 17505),
    ("activitynet", "activitynet_captions/val_2.json", None, 17031),
    ("tacos", "tacos/train.json", None, 9790),
    ("tacos", "tacos/val.json", None, 4436),
    ("tacos", "tacos/test.json", None, 4001),
    ("qvhighlights", "qvhighlights/highlight_train_release.jsonl", None, 7218),
    ("qvhighlights", "qvhighlights/highlight_val_release.jsonl", None, 1550),
    ("qvhighlights", "qvhighlights/highlight_test_release.jsonl", None, 1542),
]


@pytest.mark.parametrize("dataset,path,durations,expected", REAL_FILES, ids=[p for _, p, _, _ in REAL_FILES])
def test_real_files_convert_with_the_published_counts(shared, dataset, path, durations, expected):
    ann = shared / "annotations"
    records = read_annotations(dataset, ann / path, ann / durations if durations else None)
    kept, report = clean_records(records, source=path)
    assert len(kept) == report.kept == expected
    assert all(0 <= s <= e <= r.duration for r in kept for s, e in r.windows)


def test_charades_durations_from_csv_and_json_agree(shared):
    ann = shared / "annotations" / "charades_sta"
    from_csv = read_charades_sta(ann / "charades_sta_test.txt", ann / "Charades_v1_test.csv")
    from_json = read_charades_sta(ann / "charades_sta_test.txt", ann / "charades.json")
    assert [r.duration for r in from_csv] == pytest.approx([r.duration for r in from_json], abs=1e-6)


def test_tacos_frames_become_seconds(shared):
    records = read_tacos(shared / "annotations" / "tacos" / "test.json")
    raw = json.loads((shared / "annotations" / "tacos" / "test.json").read_text())
    vid, item = next(iter(raw.items()))
    first = records[0]
    assert first.vid == vid.removesuffix(".avi")
    assert first.windows[0] == pytest.approx([item["timestamps"][0][0] / item["fps"], item["timestamps"][0][1] / item["fps"]])
    assert first.duration == pytest.approx(item["num_frames"] / item["fps"])


def test_qvhighlights_keeps_clip_ids_and_saliency(shared):
    rec = read_annotations("qvhighlights", shared / "annotations/qvhighlights/highlight_val_release.jsonl")[0]
    assert len(rec.extra["relevant_clip_ids"]) == len(rec.extra["saliency_scores"]) > 0


def test_activitynet_reversed_and_zero_length_windows_are_counted(shared):
    records = read_annotations("activitynet", shared / "annotations/activitynet_captions/train.json")
    _, report = clean_records(records)
    assert (report.windows_reversed, report.empty_windows) == (2, 2)
    dropped, report = clean_records(read_annotations("activitynet", shared / "annotations/activitynet_captions/train.json"),
                                    empty_windows="drop")
    assert len(dropped) == 37421 - 2 and report.dropped_empty == 2


def _rec(windows, duration=10.0, qid=0):
    return MomentRecord(qid, "q", "v", duration, [list(w) for w in windows])


def test_clean_clips_to_duration_and_swaps_reversed():
    kept, report = clean_records([_rec([(-1, 4)]), _rec([(8, 12)]), _rec([(5, 2)])])
    assert [r.windows for r in kept] == [[[0, 4]], [[8, 10]], [[2, 5]]]
    assert (report.windows_clipped, report.windows_reversed) == (2, 1)


def test_empty_window_policies():
    def records():
        return [_rec([(3, 3)]), _rec([(11, 12)], qid=1), _rec([(1, 2)], qid=2)]

    kept, report = clean_records(records(), empty_windows="keep")  # zero-length kept; outside the video never
    assert [r.qid for r in kept] == [0, 2] and report.empty_windows == 1
    assert (report.windows_outside, report.dropped_outside) == (1, 1)
    kept, report = clean_records(records(), empty_windows="drop")
    assert [r.qid for r in kept] == [2] and (report.dropped_empty, report.dropped_outside) == (1, 1)
    with pytest.raises(GroundingError, match="empty window"):
        clean_records([_rec([(3, 3)])], empty_windows="error")
    with pytest.raises(GroundingError, match=r"query 1\): window \[11, 12\] lies outside the video"):
        clean_records(records()[1:], empty_windows="error")


def test_window_outside_the_video_is_removed_never_kept_as_a_point():
    # [50, 60] in a 31.86 s video used to become [50, 50]: a target no prediction can hit
    rec = MomentRecord(0, "q", "v", 31.86, [[50.0, 60.0], [1.0, 2.0]], source="a.txt:7")
    kept, report = clean_records([rec, _rec([(-5, -1)], qid=1), _rec([(10, 14)], qid=2)])
    assert [r.qid for r in kept] == [0] and kept[0].windows == [[1.0, 2.0]]
    assert (report.windows_outside, report.dropped_outside, report.kept) == (3, 2, 1)
    assert report.details()[0] == "a.txt:7 (query 0): window [50, 60] lies outside the video (0 to 31.86 s); removed"


def test_repairs_name_the_line_first_few_then_a_count(tmp_path):
    ann = tmp_path / "a.txt"
    ann.write_text("".join(f"V1 {i}.0 12.0##query {i}.\n" for i in range(5)))
    kept, report = clean_records(read_charades_sta(ann, {"V1": 10.0}))
    assert len(kept) == 5 and report.windows_clipped == 5
    assert report.details() == [
        f"{ann}:1 (query 0): window [0, 12] clipped to [0, 10] (video length 10 s)",
        f"{ann}:2 (query 1): window [1, 12] clipped to [1, 10] (video length 10 s)",
        f"{ann}:3 (query 2): window [2, 12] clipped to [2, 10] (video length 10 s)",
        "... and 2 more clipped windows",
    ]


def test_missing_duration_policies():
    records = [_rec([(1, 2)], duration=None), _rec([(1, 2)], qid=1)]
    kept, report = clean_records(records, missing_duration="drop")
    assert [r.qid for r in kept] == [1] and report.dropped_no_duration == 1
    with pytest.raises(GroundingError, match="no duration"):
        clean_records([_rec([(1, 2)], duration=None)], missing_duration="error")


def test_charades_line_that_does_not_parse_names_file_and_line(tmp_path):
    ann = tmp_path / "a.txt"
    ann.write_text("V1 0.0 3.0##ok.\nV1 zero 3.0##bad start\n")
    with pytest.raises(GroundingError, match=r"a.txt:2"):
        read_charades_sta(ann, {"V1": 10.0})


def test_charades_without_durations_says_how_to_fix(tmp_path):
    ann = tmp_path / "a.txt"
    ann.write_text("V1 0.0 3.0##ok.\n")
    with pytest.raises(GroundingError, match="--durations"):
        read_charades_sta(ann)


def test_empty_annotation_file_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(GroundingError, match="holds no queries"):
        read_annotations("qvhighlights", empty)


def test_durations_csv_needs_id_and_length(tmp_path):
    bad = tmp_path / "d.csv"
    bad.write_text("vid,seconds\nA,3\n")
    with pytest.raises(GroundingError, match="'id' and 'length'"):
        read_durations(bad)


def test_native_jsonl_round_trip(tmp_path):
    records = [MomentRecord(7, "a person sits.", "V", 30.0, [[1.5, 4.0], [6.0, 9.25]], {"saliency_scores": [[1, 2, 3]]})]
    write_jsonl(records, tmp_path / "r.jsonl")
    back = read_native_jsonl(tmp_path / "r.jsonl")
    assert back[0].to_json() == records[0].to_json()


@pytest.mark.slow
def test_converter_cli_writes_native_jsonl_and_refuses_to_overwrite(tmp_path):
    ann, dur = tmp_path / "sta.txt", tmp_path / "d.json"
    ann.write_text("V1 0.0 3.0##a person sits.\nV2 2.0 40.0##someone runs.\n")
    dur.write_text(json.dumps({"V1": {"duration": 10.0}, "V2": {"duration": 20.0}}))
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, str(REPO / "tools/convert_annotations.py"), "--dataset", "charades_sta", "--input", str(ann),
           "--durations", str(dur), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "clipped to [0, duration]: 1" in done.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[1] == {"qid": 1, "query": "someone runs.", "vid": "V2", "duration": 20.0, "relevant_windows": [[2.0, 20.0]]}
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
