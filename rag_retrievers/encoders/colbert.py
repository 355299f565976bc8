"""Late-interaction (ColBERT) encoders: texts in, one L2-normalised vector per token out.

Three kinds of model folder are read, with transformers and a few lines of our own (PyLate pins
``sentence-transformers==5.3.0`` and ``transformers<=5.3.0``, which do not fit ours):

- **PyLate / sentence-transformers ColBERT** (answerai-colbert-small-v1, lightonai models, models
  saved by PyLate): ``modules.json`` lists a Transformer and one or more ``Dense`` projections
  (``1_Dense/config.json`` + weights); prefixes, lengths, query expansion and the skiplist come
  from ``config_sentence_transformers.json`` (defaults as PyLate: ``[Q] ``/``[D] ``, 32/180,
  expansion on, not attended, punctuation skiplist).
- **Stanford ColBERT** (colbert-ir/colbertv2.0): a BERT checkpoint (``HF_ColBERT``) whose weights
  also hold ``linear.weight`` (the projection, no bias); ``artifact.metadata`` gives
  ``query_maxlen``/``doc_maxlen``, the markers (``[unused0]``/``[unused1]``) and
  ``attend_to_mask_tokens``.
- **Stand-in**: any other transformer folder, e.g. the dense ``minilm``. Its last hidden states,
  L2-normalised, without projection, markers, expansion or skiplist. This is *not* ColBERT: no
  such weights exist on these machines, and :attr:`ColBERTEncoder.stand_in` says so.

How a ColBERT text becomes vectors (Khattab & Zaharia, SIGIR 2020; Santhanam et al., NAACL 2022):
the marker token is inserted after ``[CLS]``; a query is padded with ``[MASK]`` to a fixed length
("query augmentation"; those positions are kept even when not attended), a document keeps its
attended tokens minus punctuation; every kept hidden state goes through the projection and is
L2-normalised. Score = MaxSim (:mod:`rag_retrievers.scoring.maxsim`).

>>> encoder = ColBERTEncoder("minilm")  # doctest: +SKIP
>>> encoder.stand_in, encoder.dimension  # doctest: +SKIP
(True, 384)
>>> [v.shape for v in encoder.encode_queries(["what is late interaction"])]  # doctest: +SKIP
[(7, 384)]
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag_retrievers.encoders.batching import check_texts, longest_first
from rag_retrievers.encoders.models import (
    ResolvedModel,
    UnknownModelError,
    folder_stamp,
    hub_unreachable,
    loading_error,
    quiet_loading,
    resolve_model,
)
from rag_retrievers.errors import InvalidInputError, MissingDependencyError

ModelFormat = Literal["pylate", "stanford", "stand-in"]

STAND_IN_NOTE = "stand-in: MaxSim over a dense model's token embeddings, not a ColBERT model"


@dataclass(frozen=True)
class LateInteractionSettings:
    """How texts are tokenised and which token vectors are kept; JSON values for a manifest."""

    format: ModelFormat
    query_length: int
    document_length: int
    query_marker: str | None  # token inserted after [CLS]; None: no marker
    document_marker: str | None
    query_expansion: bool  # pad queries with [MASK] to query_length and keep those vectors
    attend_to_expansion: bool
    skiplist: tuple[str, ...] = field(default=())  # document tokens dropped (punctuation)


@dataclass(frozen=True)
class _Projection:
    """One linear layer after the transformer (PyLate ``Dense`` / Stanford ``linear``)."""

    weight: np.ndarray  # (out, in)
    bias: np.ndarray | None
    activation: str  # "identity" or "tanh"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _read_tensors(folder: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Tensors of a folder's weight file (safetensors, else pytorch_model.bin), as float32."""
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="np") as f:
            keys = [k for k in f.keys() if names is None or k in names]  # noqa: SIM118
            return {k: np.asarray(f.get_tensor(k), dtype=np.float32) for k in keys}
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        import torch

        state = torch.load(binary, map_location="cpu", weights_only=True)
        return {
            k: v.float().numpy()
            for k, v in state.items()
            if (names is None or k in names) and hasattr(v, "float")
        }
    return {}


def _tensor_names(folder: Path) -> set[str]:
    st = folder / "model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="np") as f:
            return set(f.keys())
    return set(_read_tensors(folder))


def _dense_projection(folder: Path) -> _Projection:
    config = _read_json(folder / "config.json")
    if config.get("use_residual"):
        raise InvalidInputError(f"{folder}: Dense layers with use_residual are not supported")
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if activation.endswith("Identity"):
        act = "identity"
    elif activation.endswith("Tanh"):
        act = "tanh"
    else:
        raise InvalidInputError(f"{folder}: unsupported Dense activation {activation!r}")
    tensors = _read_tensors(folder)
    if "linear.weight" not in tensors:
        raise InvalidInputError(f"{folder}: no linear.weight in the Dense layer's weights")
    return _Projection(tensors["linear.weight"], tensors.get("linear.bias"), act)


@dataclass(frozen=True)
class _Layout:
    """What a model folder holds: where the transformer is, projections, settings."""

    transformer: Path
    projections: tuple[_Projection, ...]
    settings: LateInteractionSettings


def _punctuation() -> tuple[str, ...]:
    return tuple(string.punctuation)


def read_layout(folder: Path) -> _Layout:
    """Detect a folder's format (PyLate, Stanford, or a stand-in) and read its settings."""
    modules = folder / "modules.json"
    if modules.is_file():
        entries = json.loads(modules.read_text(encoding="utf-8"))
        types = [str(e.get("type", "")) for e in entries]
        dense = [e for e in entries if str(e.get("type", "")).endswith("Dense")]
        st_config = _read_json(folder / "config_sentence_transformers.json")
        transformer_entry = next((e for e in entries if "Transformer" in str(e["type"])), None)
        if transformer_entry is None:
            raise InvalidInputError(f"{folder}: modules.json lists no Transformer module")
        transformer = folder / str(transformer_entry.get("path", ""))
        bert_config = _read_json(transformer / "sentence_bert_config.json")
        pooled = any(t.endswith("Pooling") for t in types)
        if (dense and not pooled) or "query_length" in st_config:
            projections = tuple(_dense_projection(folder / str(e["path"])) for e in dense)
            expansion = bool(st_config.get("do_query_expansion", True))
            settings = LateInteractionSettings(
                format="pylate",
                query_length=int(st_config.get("query_length") or 32),
                document_length=int(st_config.get("document_length") or 180),
                query_marker=st_config.get("query_prefix", "[Q] ") or None,
                document_marker=st_config.get("document_prefix", "[D] ") or None,
                query_expansion=expansion,
                attend_to_expansion=expansion
                and bool(st_config.get("attend_to_expansion_tokens", False)),
                skiplist=tuple(st_config.get("skiplist_words") or _punctuation()),
            )
            return _Layout(transformer, projections, settings)
        length = int(bert_config.get("max_seq_length") or 512)
        return _Layout(transformer, (), _stand_in(length))
    config = _read_json(folder / "config.json")
    architectures = config.get("architectures") or []
    metadata = _read_json(folder / "artifact.metadata")
    if "HF_ColBERT" in architectures or metadata or "linear.weight" in _tensor_names(folder):
        tensors = _read_tensors(folder, ["linear.weight"])
        if "linear.weight" not in tensors:
            raise InvalidInputError(
                f"{folder}: a Stanford ColBERT checkpoint without linear.weight"
            )
        settings = LateInteractionSettings(
            format="stanford",
            query_length=int(metadata.get("query_maxlen") or 32),
            document_length=int(metadata.get("doc_maxlen") or 180),
            query_marker=str(metadata.get("query_token_id") or "[unused0]"),
            document_marker=str(metadata.get("doc_token_id") or "[unused1]"),
            query_expansion=True,
            attend_to_expansion=bool(metadata.get("attend_to_mask_tokens", False)),
            skiplist=_punctuation() if metadata.get("mask_punctuation", True) else (),
        )
        projection = _Projection(tensors["linear.weight"], None, "identity")
        return _Layout(folder, (projection,), settings)
    length = int(config.get("max_position_embeddings") or 512)
    return _Layout(folder, (), _stand_in(min(length, 512)))


def _stand_in(length: int) -> LateInteractionSettings:
    return LateInteractionSettings(
        format="stand-in",
        query_length=length,
        document_length=length,
        query_marker=None,
        document_marker=None,
        query_expansion=False,
        attend_to_expansion=False,
    )


def _import_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers and torch", "neural") from None
    return transformers


@lru_cache(maxsize=4)
def _load(path: str, device: str | None, stamp: tuple[Any, ...]) -> tuple[Any, Any]:
    # ``stamp`` (sizes and mtimes of the folder's files) makes a replaced model load again
    transformers = _import_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    with quiet_loading():
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
    model.eval()
    if device is not None:
        model.to(device)
    return tokenizer, model


def clear_model_cache() -> None:
    """Forget the models loaded so far."""
    _load.cache_clear()


def _local_folder(model: str) -> ResolvedModel:
    """A short name, local folder, or a hub id fetched into the local cache."""
    resolved = resolve_model(model, "dense")
    if resolved.local:
        return resolved
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(model)
    except Exception as exc:  # offline, typo, no access
        raise hub_unreachable(model, "dense", exc) from None
    return ResolvedModel(model, str(folder), "dense", local=True)


class ColBERTEncoder:
    """Encode queries and documents into L2-normalised token vectors (one array per text).

    ``model``: a short name (``minilm``: the offline stand-in), a local folder or a Hugging Face
    id, in PyLate or Stanford format. ``query_length``/``document_length`` override the model's.
    ``threads`` calls ``torch.set_num_threads`` (process-wide) only when given.
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        device: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        query_length: int | None = None,
        document_length: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        for name, value in (
            ("threads", threads),
            ("query_length", query_length),
            ("document_length", document_length),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be an int or None, got {value!r}")
            if value is not None and value < (1 if name == "threads" else 4):
                raise InvalidInputError(f"{name} is too small: {value}")
        self.resolved = _local_folder(model)
        folder = Path(self.resolved.path)
        try:
            layout = read_layout(folder)
        except (OSError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise loading_error(self.resolved, "ColBERT or transformer model", exc) from exc
        settings = layout.settings
        if query_length is not None or document_length is not None:
            settings = LateInteractionSettings(
                **{
                    **asdict(settings),
                    "query_length": query_length or settings.query_length,
                    "document_length": document_length or settings.document_length,
                    "skiplist": settings.skiplist,
                }
            )
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        try:
            self.tokenizer, self.model = _load(
                str(layout.transformer), device, folder_stamp(self.resolved)
            )
        except MissingDependencyError:
            raise
        except Exception as exc:
            raise loading_error(self.resolved, "transformer model", exc) from exc
        self.settings = settings
        self.device, self.threads, self.batch_size = device, threads, batch_size
        self._projections = layout.projections
        hidden = int(self.model.config.hidden_size)
        for p in self._projections:
            if p.weight.shape[1] != hidden:
                raise UnknownModelError(
                    f"ColBERT model (projection takes {p.weight.shape[1]} features, the "
                    f"transformer gives {hidden})",
                    model,
                    [],
                )
            hidden = p.weight.shape[0]
        self.dimension: int = hidden
        self._marker_ids = {
            "query": self._token_id(settings.query_marker),
            "document": self._token_id(settings.document_marker),
        }
        vocab = self.tokenizer.get_vocab()
        self._skip_ids = np.asarray(
            sorted({vocab[w] for w in settings.skiplist if w in vocab}), dtype=np.int64
        )
        self._identity: dict[str, Any] | None = None

    def _token_id(self, token: str | None) -> int | None:
        if token is None:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise InvalidInputError(
                f"the marker token {token!r} is not in the tokenizer of {self.name!r}"
            )
        return int(token_id)

    # -- what the encoder is -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def stand_in(self) -> bool:
        """True when the model is not a ColBERT model: raw token embeddings of another model."""
        return self.settings.format == "stand-in"

    def identity(self) -> dict[str, Any]:
        """Name, folder, format, dimension, tokenisation settings and a fingerprint of the
        weight files; a collection records it and refuses other models."""
        if self._identity is None:
            # the folder is always local here (a hub id is fetched first): files() is its path
            settings = {**asdict(self.settings), "skiplist": list(self.settings.skiplist)}
            self._identity = self.resolved.identity(dimension=self.dimension, **settings)
        return dict(self._identity)

    def __repr__(self) -> str:
        note = f"  # {STAND_IN_NOTE}" if self.stand_in else ""
        return (
            f"ColBERTEncoder({self.name!r}, format={self.settings.format!r}, "
            f"dimension={self.dimension}){note}"
        )

    # -- encoding ------------------------------------------------------------------------------

    def encode_queries(
        self, texts: Sequence[str], show_progress: bool | None = None
    ) -> list[np.ndarray]:
        """One ``(tokens, dimension)`` float32 array per query, rows L2-normalised."""
        return self._encode(texts, "query", show_progress)

    def encode_documents(
        self, texts: Sequence[str], show_progress: bool | None = None
    ) -> list[np.ndarray]:
        """One ``(tokens, dimension)`` float32 array per document, rows L2-normalised."""
        return self._encode(texts, "document", show_progress)

    def _encode(
        self, texts: Sequence[str], kind: Literal["query", "document"], progress: bool | None
    ) -> list[np.ndarray]:
        texts = check_texts(texts)
        out: list[np.ndarray] = [np.empty((0, self.dimension), np.float32)] * len(texts)
        if not texts:
            return out
        for rows in longest_first(texts, self.batch_size, f"encoding {kind}s", progress):
            vectors = self._encode_batch([texts[i] for i in rows], kind)
            for row, v in zip(rows, vectors, strict=True):
                out[row] = v
        return out

    def tokenize(
        self, texts: list[str], kind: Literal["query", "document"]
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Model inputs (torch tensors) and which positions give vectors (a bool array)."""
        import torch

        s = self.settings
        marker = self._marker_ids[kind]
        length = s.query_length if kind == "query" else s.document_length
        expand = kind == "query" and s.query_expansion
        tok = self.tokenizer
        enc = tok(
            texts,
            padding="max_length" if expand else "longest",
            truncation=True,
            max_length=length - 1 if marker is not None else length,
            return_tensors="pt",
        )
        ids, attention = enc["input_ids"], enc["attention_mask"]
        types = enc.get("token_type_ids")
        if marker is not None:  # after [CLS], as ColBERT and PyLate do
            ids = torch.cat([ids[:, :1], torch.full_like(ids[:, :1], marker), ids[:, 1:]], 1)
            attention = torch.cat(
                [attention[:, :1], torch.ones_like(attention[:, :1]), attention[:, 1:]], 1
            )
            if types is not None:
                types = torch.cat([types[:, :1], torch.zeros_like(types[:, :1]), types[:, 1:]], 1)
        if expand:
            ids = ids.masked_fill(attention == 0, int(tok.mask_token_id))
            keep = np.ones(tuple(ids.shape), dtype=bool)
            if s.attend_to_expansion:
                attention = torch.ones_like(attention)
        else:
            keep = attention.numpy().astype(bool)
            if kind == "document" and len(self._skip_ids):
                keep &= ~np.isin(ids.numpy(), self._skip_ids)
        inputs = {"input_ids": ids, "attention_mask": attention}
        if types is not None:
            inputs["token_type_ids"] = types
        return inputs, keep

    def _encode_batch(
        self, texts: list[str], kind: Literal["query", "document"]
    ) -> list[np.ndarray]:
        import torch

        inputs, keep = self.tokenize(texts, kind)
        if self.device is not None:
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state.float().cpu().numpy()
        for p in self._projections:
            hidden = hidden @ p.weight.T
            if p.bias is not None:
                hidden = hidden + p.bias
            if p.activation == "tanh":
                hidden = np.tanh(hidden)
        result = []
        for vectors, mask in zip(hidden, keep, strict=True):
            kept = vectors[mask]
            norms = np.linalg.norm(kept, axis=1, keepdims=True)
            result.append((kept / np.maximum(norms, 1e-12)).astype(np.float32))
        return result
