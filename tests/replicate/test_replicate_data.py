"""Data loaders: local JSONL/TSV, clear errors, and the hub path through a stand-in `datasets` module."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from claimscope.replicate.config import load_task_registry
from claimscope.replicate.data import load_examples
from claimscope.replicate.errors import BadDataFile, DataNotFound

TASKS = load_task_registry()


def test_local_tsv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "panx").mkdir()
    (tmp_path / "panx" / "test.de.tsv").write_text("tokens\ttags\nAnna wohnt in Berlin\tB-PER O O B-LOC\n")
    rows = load_examples(TASKS["panx"], "test", "de", source="local", data_dir=tmp_path)
    assert rows == [{"tokens": ["Anna", "wohnt", "in", "Berlin"], "tags": ["B-PER", "O", "O", "B-LOC"]}]
    (tmp_path / "xnli").mkdir()
    (tmp_path / "xnli" / "train.jsonl").write_text('{"text_a": "a", "text_b": "b", "label": "neutral"}\n\n')
    rows = load_examples(TASKS["xnli"], "train", "en", source="local", data_dir=tmp_path)  # `train.jsonl` = English
    assert rows[0]["label"] == "neutral"


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound, match=r"xnli/test\.fr\.jsonl"):
        load_examples(TASKS["xnli"], "test", "fr", source="local", data_dir=tmp_path)
    (tmp_path / "xnli").mkdir()
    (tmp_path / "xnli" / "test.fr.jsonl").write_text('{"text_a": "a", "label": "neutral"}\n{bad\n')
    with pytest.raises(BadDataFile, match=r"test\.fr\.jsonl:2"):
        load_examples(TASKS["xnli"], "test", "fr", source="local", data_dir=tmp_path)
    (tmp_path / "xnli" / "test.fr.jsonl").write_text('{"text_a": "a"}\n')
    with pytest.raises(BadDataFile, match="missing field"):
        load_examples(TASKS["xnli"], "test", "fr", source="local", data_dir=tmp_path)


class TaggedRows(list):
    """A list of rows with `datasets`-style features naming the tag classes."""

    def __init__(self, rows: list, names: list[str]) -> None:
        super().__init__(rows)
        self.features = {"ner_tags": types.SimpleNamespace(feature=types.SimpleNamespace(names=names))}


def test_hub_path_with_stand_in_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if path == "google/xtreme" and name == "PAWS-X.de":
            return [{"sentence1": "Ein Satz", "sentence2": "Noch einer", "label": 1}]
        if path == "google/xtreme" and name == "udpos.German":
            return [{"tokens": ["Ein", "Hund"], "pos_tags": ["DET", "NOUN"]}]
        if path == "rajpurkar/squad":
            return [{"id": "1", "context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": [0]}}]
        if path == "Rowan/hellaswag":
            return [{"ctx": "He opens", "endings": ["a", "b", "c", "d"], "label": "2"}]
        if path == "google/xtreme" and name == "PAN-X.de":
            return TaggedRows([{"tokens": ["Anna", "lacht"], "ner_tags": [1, 0]}], ["O", "B-PER", "I-PER"])
        if path == "google/xtreme" and name == "tatoeba.deu":
            return [{"source_sentence": f"Satz {i}", "target_sentence": f"sentence {i}"} for i in range(3)]
        raise ValueError(f"Unknown split {split!r}")  # what `datasets` raises for a split it does not have

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert load_examples(TASKS["pawsx"], "test", "de", source="hub")[0] == {
        "text_a": "Ein Satz", "text_b": "Noch einer", "label": "1"}  # fmt: skip
    assert load_examples(TASKS["udpos"], "dev", "de", source="hub")[0]["tags"] == ["DET", "NOUN"]
    # XQuAD trains on SQuAD (the `train` override of its hub spec)
    assert load_examples(TASKS["xquad"], "train", "en", source="hub")[0]["answers"]["text"] == ["c"]
    assert load_examples(TASKS["hellaswag"], "train", "en", source="hub")[0]["label"] == 2
    assert ("google/xtreme", "PAWS-X.de", "test") in calls
    # integer-coded tags become their class names (so NER is scored on entities)
    assert load_examples(TASKS["panx"], "test", "de", source="hub")[0]["tags"] == ["B-PER", "O"]
    pairs = load_examples(TASKS["tatoeba"], "test", "de", source="hub")
    assert len({r["src_id"] for r in pairs}) == 3 and pairs[0]["tgt"] == "sentence 0"
    with pytest.raises(DataNotFound, match="tydiqa"):
        load_examples(TASKS["tydiqa"], "test", "fi", source="hub")
    assert ("google/xtreme", "udpos.German", "validation") in calls
    assert ("rajpurkar/squad", None, "train") in calls
    # ... and selects its model on SQuAD's dev set, not on XQuAD (which is only test data)
    load_examples(TASKS["xquad"], "dev", "en", source="hub")
    assert ("rajpurkar/squad", None, "validation") in calls
    assert not TASKS["tydiqa"].select_on_dev


def test_hub_without_public_dataset_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=None))
    with pytest.raises(DataNotFound, match="ccg: has no public hub dataset"):
        load_examples(TASKS["ccg"], "train", "en", source="hub")
