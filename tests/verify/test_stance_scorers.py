"""Stance scorers: a tiny HF NLI model built here, the LLM judge against a loopback server, the lexical fallback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from claimscope.verify import stance

WORDS = "the drug reduces blood pressure in mice does not increase risk of cancer cells patients trial".split()


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_nli")
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(d / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3,
                     id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                     label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


PAIRS = [("the drug reduces blood pressure", "in mice the drug reduces blood pressure"),
         ("cancer risk", "the drug does not increase risk of cancer in patients of the trial"),
         ("patients", "mice")]


def test_hf_nli_maps_labels_to_our_columns(tiny_nli: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = stance.load_scorer(str(tiny_nli), device="cpu")
    assert isinstance(scorer, stance.StanceScorer)
    assert scorer.info.role == "stance" and scorer.info.sha256 and len(scorer.info.sha256) == 64
    got = scorer.score(PAIRS)
    assert got.shape == (3, 3) and np.allclose(got.sum(1), 1.0)
    # reference: the model run by hand one pair at a time; entailment=0 -> support, contradiction=2 -> contradict
    model = AutoModelForSequenceClassification.from_pretrained(tiny_nli).eval()
    tok = AutoTokenizer.from_pretrained(tiny_nli)
    for row, (claim, ev) in zip(got, PAIRS, strict=True):
        with torch.no_grad():
            p = torch.softmax(model(**tok(claim, ev, return_tensors="pt")).logits, -1)[0].numpy()
        assert row == pytest.approx([p[0], p[2], p[1]], abs=1e-5)
    assert scorer.score([]).shape == (0, 3)


def test_label_columns() -> None:
    assert stance.label_columns({0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"}, "m") == [0, 2, 1]
    assert stance.label_columns({0: "entailment", 1: "not_entailment"}, "m") == [0, 2]
    assert stance.label_columns({0: "SUPPORT", 1: "CONTRADICT", 2: "NOT_ENOUGH_INFO"}, "m") == [0, 1, 2]
    with pytest.raises(stance.StanceModelError, match="LABEL_0"):
        stance.label_columns({0: "LABEL_0", 1: "LABEL_1"}, "m")


def test_missing_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(stance.StanceModelError, match="cannot load"):
        stance.load_scorer(str(tmp_path / "nothing-here"), device="cpu")


class _FakeChat(BaseHTTPRequestHandler):
    requests: list[dict] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        if "rises" in user:
            content = ('Sure. {"label": "CONTRADICT", '
                       '"probabilities": {"SUPPORT": 0.1, "CONTRADICT": 0.7, "NEUTRAL": 0.2}}')
        elif "falls" in user:
            content = '{"label": "SUPPORT"}'
        else:
            content = "I cannot tell."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_server():
    _FakeChat.requests = []
    _FakeChat.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_openai_judge_against_loopback(fake_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    url = f"http://127.0.0.1:{fake_server.server_port}/v1"
    scorer = stance.load_scorer(f"openai:judge-model@{url}")
    assert scorer.info.name == f"openai:judge-model@{url}"
    _FakeChat.fail_first = 1  # one 503, retried
    got = scorer.score([("blood pressure falls", "it fell"), ("blood pressure falls", "it rises"), ("x", "y")])
    assert got[0] == pytest.approx([0.9, 0.05, 0.05])
    assert got[1] == pytest.approx([0.1, 0.7, 0.2])
    assert got[2] == pytest.approx([0.0, 0.0, 1.0])
    reqs = _FakeChat.requests
    assert len(reqs) == 4 and all(r["path"] == "/v1/chat/completions" for r in reqs)
    assert reqs[0]["auth"] == "Bearer sk-test" and reqs[1]["body"]["model"] == "judge-model"
    assert "Claim: blood pressure falls" in reqs[1]["body"]["messages"][-1]["content"]


def test_openai_judge_unreachable_is_typed() -> None:
    from claimscope.errors import NetworkError

    scorer = stance.OpenAIJudge("m", "http://127.0.0.1:9", retries=1, timeout=2)
    with pytest.raises(NetworkError, match="cannot reach"):
        scorer.score([("a", "b")])


def test_lexical_fallback() -> None:
    scorer = stance.load_scorer("lexical")
    got = scorer.score([("Aspirin reduces stroke risk", "aspirin reduces the risk of stroke in adults"),
                        ("Aspirin reduces stroke risk", "we measured rainfall in Peru")])
    assert got[0, 0] > 0.8 and got[1, 2] == pytest.approx(1.0) and np.allclose(got.sum(1), 1.0)
