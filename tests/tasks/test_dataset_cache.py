import pytest

from tasks.dataset_cache import cached_json


def test_a_json_entry_is_built_once_per_key(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"3": [1, -1]}

    first = cached_json(tmp_path, "held", {"slots": "a"}, build)
    again = cached_json(tmp_path, "held", {"slots": "a"}, build)
    assert first == again == {"3": [1, -1]} and len(calls) == 1
    other = cached_json(tmp_path, "held", {"slots": "b"}, lambda: {"3": [0, 1]})
    assert other == {"3": [0, 1]} and len(list(tmp_path.glob("held-*.json"))) == 2


def test_a_failed_build_leaves_no_entry(tmp_path):
    def build():
        raise RuntimeError("matching failed")

    with pytest.raises(RuntimeError, match="matching failed"):
        cached_json(tmp_path, "held", {"slots": "a"}, build)
    assert not list(tmp_path.iterdir())
    assert cached_json(tmp_path, "held", {"slots": "a"}, lambda: [1]) == [1]
