"""The demo models' cache: a cached model is reused, a missing one is built from its shipped head (no training),
a rebuilt one is trained from scratch."""

from __future__ import annotations

import pytest

from exporter.tools import demo


@pytest.mark.parametrize(
    ("path_of", "trainer", "what", "file_name"),
    [
        (demo.demo_model_path, "train_demo_tagger", demo.TAGGER, f"demo-ner-v{demo.DEMO_VERSION}.pt"),
        (demo.demo_classifier_path, "train_demo_classifier", demo.CLASSIFIER, f"demo-topics-v{demo.DEMO_VERSION}.pt"),
    ],
)
def test_demo_paths_build_what_is_not_cached_and_train_only_on_rebuild(
    path_of, trainer, what, file_name, tmp_path, monkeypatch
):
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path))
    trained, built = [], []

    def record(log):
        def make(*args):
            target = args[-1]
            log.append(target)
            target.write_bytes(b"model")
            return target

        return make

    monkeypatch.setattr(demo, trainer, record(trained))
    monkeypatch.setattr(demo, "build_from_head", record(built))
    assert path_of() == tmp_path / file_name and built == [tmp_path / file_name] and trained == []
    assert path_of() == tmp_path / file_name and len(built) == 1  # cached: not built again
    assert path_of(rebuild=True) == tmp_path / file_name and trained == [tmp_path / file_name] and len(built) == 1


def test_the_demo_built_from_its_head_tags_and_classifies_as_trained(tmp_path, monkeypatch):
    """The shipped heads on MiniLM's own weights: no training, the answers the README shows."""
    from flair.data import Sentence
    from flair.models import SequenceTagger, TextClassifier

    from exporter.format.modelfile import load_state

    monkeypatch.setenv("FLAIR_MLFLOW_CACHE", str(tmp_path))
    tagger = SequenceTagger.load(demo.demo_model_path())
    assert load_state(demo.demo_model_path())["__cls__"] == "SequenceTagger"  # plain data
    sentence = Sentence("Angela Merkel met Tim Cook in Paris .")
    tagger.predict(sentence)
    found = {(span.text, span.tag) for span in sentence.get_spans("ner")}
    assert ("Tim Cook", "PER") in found and ("Paris", "LOC") in found, found
    classifier = TextClassifier.load(demo.demo_classifier_path())
    texts = [
        Sentence("Bayern Munich beat Dortmund 3-0 in the derby ."),
        Sentence("Shares of Apple fell after weak sales ."),
    ]
    classifier.predict(texts)
    assert [t.get_label("topic").value for t in texts] == ["sports", "business"]
