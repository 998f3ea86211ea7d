"""The one reader of user query files (tools/ground.py and tools/search.py) and of duration tables
(training and tools/build_index.py)."""

import pytest

from grounding.data.annotations import read_durations
from grounding.data.records import queries_from_args, read_queries
from grounding.errors import GroundingError


def test_jsonl_keeps_given_qids_and_numbers_the_others_by_position(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"qid": "a7", "query": " a person sits ", "vid": "ignored"}\n\n{"query": "someone waves"}\n')
    assert read_queries(path) == [{"qid": "a7", "query": "a person sits"}, {"qid": 1, "query": "someone waves"}]


def test_a_text_file_is_one_query_per_non_empty_line(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("a person opens the door\n\n  someone holds a cup\n")
    assert read_queries(path) == [{"qid": 0, "query": "a person opens the door"},
                                  {"qid": 1, "query": "someone holds a cup"}]


@pytest.mark.parametrize("name, text, message", [
    ("q.jsonl", '{"qid": 1}\n', r"q.jsonl:1: not a JSON record with a 'query'"),
    ("q.jsonl", '{"query": "ok"}\n{"query": "  "}\n', r"q.jsonl:2: the query is empty"),
    ("q.jsonl", "{not json\n", r"q.jsonl:1: not valid JSON"),
    ("q.txt", "\n \n", "holds no query"),
])
def test_a_bad_query_file_names_its_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(GroundingError, match=message):
        read_queries(tmp_path / name)


def test_command_line_query_or_file(tmp_path):
    assert queries_from_args(" a person sits ", None) == [{"qid": 0, "query": "a person sits"}]
    with pytest.raises(GroundingError, match="--query is empty"):
        queries_from_args("  ", None)
    with pytest.raises(GroundingError, match=r"--queries .*missing.txt does not exist"):
        queries_from_args(None, tmp_path / "missing.txt")


def test_durations_from_csv_or_json_and_a_missing_file_names_its_option(tmp_path):
    (tmp_path / "d.csv").write_text("id,length\nA,3.5\nB,\n")
    (tmp_path / "d.json").write_text('{"A": 3.5, "B": {"duration": 7}}')
    assert read_durations(tmp_path / "d.csv") == {"A": 3.5}  # a video without a length is left out
    assert read_durations(tmp_path / "d.json") == {"A": 3.5, "B": 7.0}
    with pytest.raises(GroundingError, match="--durations .*nope.csv does not exist"):
        read_durations(tmp_path / "nope.csv", setting="--durations")
