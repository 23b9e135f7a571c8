"""The lean model a bundle's pyfunc serves: Flair's ``predict`` for a transformer tagger or text classifier, over
:class:`~exporter.runtime.lean.text.Sentence` objects, with ONNX Runtime, ``tokenizers`` and numpy only.

A bundle can serve lean when its manifest holds a ``lean`` section (written at export, see
``exporter.backends.lean_bundle``): the head's weights in ``head.safetensors`` (covered by the manifest's
checksums), the label dictionary and the head's settings as JSON, the tokenizer's ``tokenizer.json``. Everything here
is plain data: no file is unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter.config import RuntimeOptions
from exporter.errors import BundleError, MissingDependencyError
from exporter.runtime.lean.encoder import LeanEncoder
from exporter.runtime.lean.heads import linear, lstm, sigmoid, softmax, spans_from_bio, viterbi
from exporter.runtime.lean.pooling import combine_windows, document_vector, select_layers, word_vectors
from exporter.runtime.lean.subtokens import NO_WORD, SubtokenRows
from exporter.runtime.lean.text import Sentence
from exporter.runtime.settings import EmbeddingSettings

__all__ = ["LEAN_FORMAT", "LEAN_SECTION", "LeanModel", "load_lean"]

#: the manifest section of a bundle that can serve lean
LEAN_SECTION = "lean"
#: the version of the ``lean`` section this code reads
LEAN_FORMAT = 1


class LeanModel:
    """``predict(sentences, mini_batch_size)`` labels the sentences as Flair's model would."""

    def __init__(self, directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions) -> None:
        spec = _checked_spec(manifest)
        self.spec = spec
        self.settings = EmbeddingSettings.from_dict(manifest["embeddings"])
        self.label_type = spec["label_type"]
        self.labels: list[str] = list(spec["labels"])
        self.kind = spec["kind"]
        weights = _read_head(directory / spec["head_file"])
        _check_head(spec, weights, self.settings)
        # float64 once, here: the head sums in float64 (exporter.runtime.lean.heads.linear)
        self.layers = {
            name: (weights[f"{name}.weight"].astype(np.float64), _wide(weights.get(f"{name}.bias")))
            for name in spec["layers"]
        }
        self.rnn = _rnn_layers(spec, weights)
        self.transitions = weights.get("crf.transitions")
        subtoken_spec = {**self.settings.to_dict(), "truncation_side": spec["truncation_side"]}
        self.subtokens = SubtokenRows(directory / spec["tokenizer_file"], subtoken_spec)
        self.encoder = LeanEncoder(
            directory / manifest["onnx"]["model_file"], runtime, self.settings.model_max_length, spec["pad_id"]
        )
        self.flair_mlflow_manifest = dict(manifest)

    def predict(
        self,
        sentences: Sequence[Sentence],
        mini_batch_size: int = 32,
        return_probabilities_for_all_classes: bool = False,
    ) -> None:
        """Label every sentence that holds a word; longest first in batches of ``mini_batch_size`` sentences."""
        ordered = sorted((s for s in sentences if len(s)), key=len, reverse=True)
        for start in range(0, len(ordered), mini_batch_size):
            batch = ordered[start : start + mini_batch_size]
            if self.kind == "tagger":
                self._tag(batch)
            else:
                self._classify(batch, return_probabilities_for_all_classes)

    def _states(self, batch: Sequence[Sentence]) -> list[tuple[list[np.ndarray], list[Any]]]:
        """Each sentence's windows: the selected layers' states and the rows (subtoken ids, word ids)."""
        rows = self.subtokens.rows(batch)
        outputs = self.encoder([ids for r in rows for ids in r.ids])
        settings = self.settings
        result = []
        k = 0
        for r in rows:
            states = [
                select_layers(outputs[k + w], settings.layer_positions, settings.layer_mean) for w in range(len(r.ids))
            ]
            k += len(r.ids)
            result.append((states, r))
        return result

    def _tag(self, batch: Sequence[Sentence]) -> None:
        settings, spec = self.settings, self.spec
        half_stride, width = settings.stride // 2, settings.model_max_length
        vectors = []
        for sentence, (states, rows) in zip(batch, self._states(batch)):
            word_ids = [np.asarray(w, dtype=np.int64) for w in rows.word_ids]
            joined, joined_ids = combine_windows(states, word_ids, half_stride, width, NO_WORD)
            vectors.append(word_vectors(joined, joined_ids, len(sentence), settings.subtoken_pooling))
        x = np.concatenate(vectors)
        cuts = np.cumsum([len(s) for s in batch])[:-1]  # where each sentence's words end among the batch's
        if "embedding2nn" in self.layers:
            x = linear(x, *self.layers["embedding2nn"])
        if self.rnn:
            x = np.concatenate(lstm(np.split(x, cuts), self.rnn))
        emissions = np.split(linear(x, *self.layers["linear"]), cuts)
        if spec["use_crf"]:
            decoded = viterbi(emissions, self.transitions, spec["start_tag"], spec["stop_tag"])
        else:
            decoded = []
            for e in emissions:
                probabilities = softmax(e, axis=1)
                decoded.append((probabilities.argmax(axis=1).tolist(), probabilities.max(axis=1).tolist()))
        for sentence, (tags, scores) in zip(batch, decoded):
            names = [self.labels[t] for t in tags]
            if spec["predict_spans"]:
                for tokens, score, value in spans_from_bio(names, scores):
                    sentence.add_span(self.label_type, tokens[0], tokens[-1], value, score)
            else:
                for token, name, score in zip(sentence.tokens, names, scores):
                    if name not in ("O", "_"):
                        token.add_label(self.label_type, name, score)

    def _classify(self, batch: Sequence[Sentence], all_classes: bool) -> None:
        settings, spec = self.settings, self.spec
        pad_id = spec["pad_id"]
        vectors = []
        for states, rows in self._states(batch):
            ids = [np.asarray(w, dtype=np.int64) for w in rows.ids]
            joined, joined_ids = combine_windows(states, ids, settings.stride // 2, settings.model_max_length, pad_id)
            length = int((joined_ids != pad_id).sum())
            vectors.append(document_vector(joined, length, settings.cls_pooling, spec["initial_cls_token"]))
        scores = linear(np.stack(vectors), *self.layers["decoder"])
        if spec["multi_label"]:
            probabilities = sigmoid(scores)
            thresholds = spec["multi_label_threshold"]
            for sentence, row in zip(batch, probabilities.tolist()):
                for value, score in zip(self.labels, row):
                    if value != "O" and (score > thresholds.get(value, thresholds["default"]) or all_classes):
                        sentence.add_label(self.label_type, value, score)
            return
        probabilities = softmax(scores, axis=-1)
        for sentence, row in zip(batch, probabilities.tolist()):
            if all_classes:
                for value, score in zip(self.labels, row):
                    if value != "O":
                        sentence.add_label(self.label_type, value, score)
                continue
            best = int(np.argmax(row))
            if self.labels[best] != "O":
                sentence.add_label(self.label_type, self.labels[best], row[best])


#: what every lean section holds, and what each kind adds
_SPEC_KEYS = ("head_file", "tokenizer_file", "pad_id", "truncation_side", "label_type", "labels", "layers", "kind")
_KIND_KEYS = {
    "tagger": ("use_crf", "predict_spans"),
    "classifier": ("multi_label", "multi_label_threshold", "initial_cls_token"),
}


def _checked_spec(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest's lean section, refused (``BundleError``) unless complete and naming only the bundle's files."""
    spec = manifest.get(LEAN_SECTION)
    if not isinstance(spec, Mapping) or spec.get("format") != LEAN_FORMAT:
        found = spec.get("format") if isinstance(spec, Mapping) else spec
        raise BundleError(
            f"The bundle's lean section has format {found!r}; this flair-mlflow reads format {LEAN_FORMAT}. "
            "Upgrade flair-mlflow, or serve it with serving_path='flair'."
        )
    kind = spec.get("kind")
    needed = (*_SPEC_KEYS, *_KIND_KEYS.get(kind, ())) + (("start_tag", "stop_tag") if spec.get("use_crf") else ())
    missing = [key for key in needed if key not in spec]
    if kind not in _KIND_KEYS or missing or "embeddings" not in manifest or "onnx" not in manifest:
        raise BundleError(
            f"The bundle's lean section is incomplete (kind {kind!r}, missing {', '.join(missing) or 'embeddings'}): "
            "export it again, or serve it with serving_path='flair'."
        )
    files = manifest.get("files") or {}
    for key in ("head_file", "tokenizer_file"):  # only files the manifest's checksums cover
        if spec[key] not in files:
            raise BundleError(f"The bundle's lean section names {spec[key]!r}, which is not one of its files.")
    return spec


def _check_head(spec: Mapping[str, Any], weights: Mapping[str, np.ndarray], settings: EmbeddingSettings) -> None:
    """The head's tensors fit each other, the embeddings and the labels."""
    width = settings.embedding_length
    problems = []
    for name in spec["layers"]:
        if name == "linear" and spec.get("rnn"):  # the recurrent layers run between reprojection and linear
            width = _check_rnn(spec["rnn"], weights, width, problems)
        weight, bias = weights.get(f"{name}.weight"), weights.get(f"{name}.bias")
        if weight is None or weight.ndim != 2 or weight.shape[1] != width:
            problems.append(f"{name}.weight is not a matrix of {width} columns")
            continue
        if bias is not None and bias.shape != (weight.shape[0],):
            problems.append(f"{name}.bias does not fit {name}.weight")
        width = weight.shape[0]
    labels = len(spec["labels"])
    if width != labels:
        problems.append(f"the head gives {width} scores for {labels} labels")
    if spec.get("use_crf"):
        transitions = weights.get("crf.transitions")
        if transitions is None or transitions.shape != (labels, labels):
            problems.append(f"crf.transitions is not {labels} x {labels}")
        if not all(isinstance(spec[k], int) and 0 <= spec[k] < labels for k in ("start_tag", "stop_tag")):
            problems.append("start_tag / stop_tag are not label indexes")
    if problems:
        raise BundleError(f"The bundle's head weights do not fit its lean section: {'; '.join(problems)}.")


def _rnn_names(rnn: Mapping[str, Any]) -> list[list[str]]:
    """PyTorch's names of each layer's directions: ``l0``, ``l0_reverse``, ``l1``, ..."""
    suffixes = ["", "_reverse"] if rnn["bidirectional"] else [""]
    return [[f"l{k}{suffix}" for suffix in suffixes] for k in range(rnn["layers"])]


def _check_rnn(rnn: Any, weights: Mapping[str, np.ndarray], width: int, problems: list[str]) -> int:
    """Check the LSTM's tensors against its input width; return its output width."""
    if not isinstance(rnn, Mapping) or not isinstance(rnn.get("layers"), int) or rnn["layers"] < 1:
        problems.append("the recurrent layer's settings are malformed")
        return width
    for directions in _rnn_names(rnn):
        for name in directions:
            ih, hh = weights.get(f"rnn.weight_ih_{name}"), weights.get(f"rnn.weight_hh_{name}")
            if ih is None or hh is None or ih.ndim != 2 or hh.ndim != 2 or ih.shape[1] != width:
                problems.append(f"rnn.weight_ih_{name} is not a matrix of {width} columns")
                return width
            hidden = hh.shape[1]
            expected = (4 * hidden,)
            if (
                ih.shape[0] != 4 * hidden
                or hh.shape[0] != 4 * hidden
                or any(weights.get(f"rnn.{b}_{name}", np.zeros(0)).shape != expected for b in ("bias_ih", "bias_hh"))
            ):
                problems.append(f"the LSTM tensors of {name} do not fit each other")
                return width
        width = hidden * len(directions)
    return width


def _rnn_layers(spec: Mapping[str, Any], weights: Mapping[str, np.ndarray]) -> list[list[tuple[np.ndarray, ...]]]:
    """The LSTM's layers as :func:`~exporter.runtime.lean.heads.lstm` takes them (float64, biases summed)."""
    if not spec.get("rnn"):
        return []
    return [
        [
            (
                weights[f"rnn.weight_ih_{name}"].astype(np.float64),
                weights[f"rnn.weight_hh_{name}"].astype(np.float64),
                weights[f"rnn.bias_ih_{name}"].astype(np.float64) + weights[f"rnn.bias_hh_{name}"],
            )
            for name in directions
        ]
        for directions in _rnn_names(spec["rnn"])
    ]


def _wide(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else array.astype(np.float64)


def _read_head(path: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as e:
        raise MissingDependencyError("safetensors", purpose="lean serving") from e
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors' own error types
        raise BundleError(f"The bundle's head weights {path.name} cannot be read: {e}") from e


def load_lean(directory: Path, manifest: Mapping[str, Any], runtime: RuntimeOptions) -> LeanModel:
    """The lean model of a verified bundle (the caller checked the manifest and its checksums)."""
    return LeanModel(directory, manifest, runtime)
