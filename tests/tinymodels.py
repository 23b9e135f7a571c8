"""Tiny random transformers and Flair taggers built offline, for fast tests."""

from __future__ import annotations

from pathlib import Path

from exporter.quality.corpus import CITIES, COUNTRIES, FIRST_NAMES, LAST_NAMES, MISC, ORGS, TEMPLATES, WORDS

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_bert(directory: Path, *, max_length: int = 64, layers: int = 3, hidden: int = 32, seed: int = 0) -> Path:
    """A random BERT with its own word-piece vocabulary: common words whole, names in pieces."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    whole = set()
    for text in TEMPLATES + WORDS + MISC + ORGS[:10]:
        whole.update(w.lower() for w in text.replace("{", " ").replace("}", " ").split())
    pieces = set()
    for name in FIRST_NAMES + LAST_NAMES + CITIES + COUNTRIES + ORGS:
        for word in name.lower().split():
            if word in whole:
                continue
            pieces.add(word[:3])
            pieces.update("##" + word[i : i + 2] for i in range(3, len(word), 2))
    chars = set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()")
    vocab = SPECIAL + sorted(whole) + sorted(pieces) + sorted(chars) + sorted("##" + c for c in chars)
    vocab = list(dict.fromkeys(vocab))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab_file=str(directory / "vocab.txt"), do_lower_case=True, model_max_length=max_length
    )
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_length,
    )
    BertModel(config).save_pretrained(str(directory))
    return directory


def build_tiny_tagger(
    bert_dir: Path,
    *,
    subtoken_pooling: str = "first",
    layers: str = "-1",
    layer_mean: bool = True,
    use_crf: bool = True,
    use_rnn: bool = False,
    allow_long_sentences: bool = True,
    use_context: int = 0,
    seed: int = 0,
    tags: tuple[str, ...] = (),
    rnn_type: str = "LSTM",
    rnn_layers: int = 1,
):
    """A random SequenceTagger (PER/LOC/ORG/MISC, BIOES) over the tiny BERT; ``use_context`` as in
    Flair's FLERT taggers (that many context characters on each side); ``tags``: token labels instead (part of
    speech: no spans)."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import TransformerWordEmbeddings
    from flair.models import SequenceTagger

    flair.set_seed(seed)
    embeddings = TransformerWordEmbeddings(
        str(bert_dir),
        layers=layers,
        layer_mean=layer_mean,
        subtoken_pooling=subtoken_pooling,
        allow_long_sentences=allow_long_sentences,
        use_context=use_context,
        fine_tune=False,
    )
    dictionary = Dictionary(add_unk=False)
    if tags:
        for tag in tags:
            dictionary.add_item(tag)
    else:
        dictionary.add_item("O")
        for label in ("PER", "LOC", "ORG", "MISC"):
            for prefix in "SBIE":
                dictionary.add_item(f"{prefix}-{label}")
    tagger = SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=dictionary,
        tag_type="pos" if tags else "ner",
        tag_format="BIOES",
        use_crf=use_crf,
        use_rnn=use_rnn,
        rnn_type=rnn_type,
        rnn_layers=rnn_layers,
        hidden_size=16,
        reproject_embeddings=True,
    )
    # Scale the head up so that a random model still predicts entities.
    with torch.no_grad():
        for p in tagger.linear.parameters():
            p.mul_(8.0)
    return tagger.eval()


def build_tiny_classifier(
    bert_dir: Path,
    *,
    cls_pooling: str = "cls",
    layers: str = "-1",
    layer_mean: bool = True,
    multi_label: bool = False,
    seed: int = 0,
    allow_long_sentences: bool = False,
):
    """A random TextClassifier (topics) over the tiny BERT's document embeddings."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import TransformerDocumentEmbeddings
    from flair.models import TextClassifier

    flair.set_seed(seed)
    embeddings = TransformerDocumentEmbeddings(
        str(bert_dir),
        layers=layers,
        layer_mean=layer_mean,
        cls_pooling=cls_pooling,
        fine_tune=False,
        allow_long_sentences=allow_long_sentences,
    )
    labels = Dictionary(add_unk=False)
    for label in ("business", "sports", "politics", "travel"):
        labels.add_item(label)
    classifier = TextClassifier(embeddings, label_type="topic", label_dictionary=labels, multi_label=multi_label)
    # Random document vectors differ little from text to text: centre and scale the head on sample texts
    # so that the random classifier still gives different texts different labels.
    from flair.data import Sentence

    from exporter.quality.corpus import generate_sentences

    samples = [Sentence(t) for t in generate_sentences(32, seed=99, long_every=0)]
    embeddings.embed(samples)
    vectors = torch.stack([s.get_embedding() for s in samples]).detach()
    for s in samples:
        s.clear_embeddings()
    with torch.no_grad():
        weight = torch.randn_like(classifier.decoder.weight) / (vectors.std(0) + 1e-6)
        classifier.decoder.weight.copy_(weight / vectors.shape[1] ** 0.5)
        classifier.decoder.bias.copy_(-(classifier.decoder.weight @ vectors.mean(0)))
    return classifier.eval()


def _vocabulary() -> list[str]:
    """The words of the generated test sentences, lowercased and as written: a word-embedding vocabulary."""
    words = set()
    for text in TEMPLATES + WORDS + MISC + ORGS + FIRST_NAMES + LAST_NAMES + CITIES + COUNTRIES:
        for word in text.replace("{", " ").replace("}", " ").split():
            words.update((word, word.lower()))
    return sorted(words)


def build_tiny_word_embeddings(dim: int = 12, seed: int = 0):
    """Flair's WordEmbeddings without gensim or a download: a vocabulary of the test words, random vectors."""
    import flair
    import torch
    from flair.embeddings import WordEmbeddings

    flair.set_seed(seed)
    vocab = {word: i for i, word in enumerate(_vocabulary())}
    embeddings = WordEmbeddings(None, vocab=vocab, embedding_length=dim, name="tiny-words")
    with torch.no_grad():
        embeddings.embedding.weight.normal_()
    return embeddings


def _characters():
    from flair.data import Dictionary

    chars = Dictionary(add_unk=True)
    for char in sorted(set("".join(_vocabulary())) | set(" .,;:!?'\"-()0123456789")):
        chars.add_item(char)
    return chars


def build_tiny_flair_embeddings(forward: bool, hidden: int = 24, layers: int = 1, seed: int = 0):
    """Flair's contextual string embeddings on a random character LM of the given shape (no download)."""
    import flair
    from flair.embeddings import FlairEmbeddings
    from flair.models import LanguageModel

    flair.set_seed(seed)
    lm = LanguageModel(_characters(), is_forward_lm=forward, hidden_size=hidden, nlayers=layers, embedding_size=10)
    return FlairEmbeddings(lm)


def _span_tags():
    from flair.data import Dictionary

    tags = Dictionary(add_unk=False)
    for label in ("PER", "LOC", "ORG", "MISC"):
        tags.add_item(label)
    tags.span_labels = True
    return tags


def build_classic_tagger(kind: str = "flair", *, use_rnn: bool = True, use_crf: bool = True, seed: int = 0):
    """A random tagger of the classic shapes: ``flair`` (word embeddings + forward and backward character LMs,
    ner-english's shape), ``chars`` (word + character + one-hot embeddings), ``words`` (word embeddings alone)."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import CharacterEmbeddings, OneHotEmbeddings, StackedEmbeddings
    from flair.models import SequenceTagger

    flair.set_seed(seed)
    words = build_tiny_word_embeddings(seed=seed)
    if kind == "flair":
        members = [
            words,
            build_tiny_flair_embeddings(True, seed=seed),
            build_tiny_flair_embeddings(False, seed=seed + 1),
        ]
    elif kind == "chars":
        vocabulary = Dictionary(add_unk=True)
        for word in _vocabulary():
            vocabulary.add_item(word)
        members = [
            words,
            CharacterEmbeddings(path_to_char_dict=_characters(), char_embedding_dim=8, hidden_size_char=8),
            OneHotEmbeddings(vocab_dictionary=vocabulary, field="text", embedding_length=6),
        ]
    elif kind == "transformers":  # two transformers in one stack (Flair's own model runs it)
        import tempfile
        from pathlib import Path

        from flair.embeddings import TransformerWordEmbeddings

        root = Path(tempfile.mkdtemp(prefix="two-berts-"))
        members = [TransformerWordEmbeddings(str(build_tiny_bert(root / f"bert-{i}", seed=i))) for i in (0, 1)]
    else:
        members = [words]
    embeddings = StackedEmbeddings(members) if len(members) > 1 else members[0]
    tagger = SequenceTagger(
        embeddings=embeddings,
        tag_dictionary=_span_tags(),
        tag_type="ner",
        use_crf=use_crf,
        use_rnn=use_rnn,
        hidden_size=16,
        reproject_embeddings=True,
    )
    with torch.no_grad():  # a random model that still predicts entities
        for p in tagger.linear.parameters():
            p.mul_(8.0)
    return tagger.eval()


def build_classic_classifier(kind: str = "rnn", seed: int = 0):
    """A random TextClassifier of the classic shapes: ``rnn`` (DocumentRNNEmbeddings over word embeddings,
    sentiment-fast's shape), ``pool`` (DocumentPoolEmbeddings over word and forward character-LM embeddings) or
    ``lm`` (DocumentLMEmbeddings: the forward and backward character LMs' final states)."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import DocumentLMEmbeddings, DocumentPoolEmbeddings, DocumentRNNEmbeddings
    from flair.models import TextClassifier

    flair.set_seed(seed)
    words = build_tiny_word_embeddings(seed=seed)
    if kind == "rnn":
        embeddings = DocumentRNNEmbeddings([words], hidden_size=12, bidirectional=True)
    elif kind == "lm":
        lms = [build_tiny_flair_embeddings(True, seed=seed), build_tiny_flair_embeddings(False, seed=seed + 1)]
        embeddings = DocumentLMEmbeddings(lms)
    else:
        embeddings = DocumentPoolEmbeddings([words, build_tiny_flair_embeddings(True, seed=seed)])
    labels = Dictionary(add_unk=False)
    for label in ("POSITIVE", "NEGATIVE", "NEUTRAL"):
        labels.add_item(label)
    classifier = TextClassifier(embeddings, label_type="sentiment", label_dictionary=labels)
    if kind == "lm":  # the LMs' final states barely differ between texts: the decoder reads where they do
        from flair.data import Sentence

        words = _vocabulary()
        spread_decoder(classifier.eval(), [Sentence(" ".join(words[i : i + 6])) for i in range(0, 48, 3)], seed=seed)
        return classifier
    with torch.no_grad():
        for p in classifier.decoder.parameters():
            p.mul_(20.0)
    return classifier.eval()


def build_pos_tagger(seed: int = 0):
    """A random part-of-speech tagger of pos-english's kind: token labels (no spans), word and forward/backward
    character-LM embeddings, BiLSTM without CRF."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import StackedEmbeddings
    from flair.models import SequenceTagger

    flair.set_seed(seed)
    tags = Dictionary(add_unk=False)
    for tag in ("NOUN", "VERB", "DET", "ADP", "PROPN", "ADJ", "PUNCT"):
        tags.add_item(tag)
    embeddings = StackedEmbeddings(
        [build_tiny_word_embeddings(seed=seed), build_tiny_flair_embeddings(True), build_tiny_flair_embeddings(False)]
    )
    tagger = SequenceTagger(embeddings=embeddings, tag_dictionary=tags, tag_type="pos", use_crf=False, hidden_size=16)
    with torch.no_grad():
        for p in tagger.linear.parameters():
            p.mul_(8.0)
    return tagger.eval()


def build_tiny_tars(bert_dir: Path, kind: str = "classifier", seed: int = 0):
    """A random TARS zero-shot model over the tiny BERT, switched to a task of its own (topics, or person/city
    entities), its head scaled so that it answers something."""
    import flair
    import torch
    from flair.models import TARSClassifier, TARSTagger

    flair.set_seed(seed)
    if kind == "classifier":
        tars = TARSClassifier(embeddings=str(bert_dir))
        # single-label: TARS answers each text with its best label (a random model scores every label below 0.5)
        tars.add_and_switch_to_new_task(
            "topics", ["sports", "business", "politics"], label_type="topic", multi_label=False
        )
    else:
        tars = TARSTagger(embeddings=str(bert_dir))
        tars.add_and_switch_to_new_task("entities", ["person", "city"], label_type="ner")
    if kind != "classifier":
        with torch.no_grad():
            for p in tars.tars_model.linear.parameters():
                p.mul_(30.0)
    tars.eval()  # TARS's eval() returns nothing
    return tars


def spread_tars_classifier(tars, texts, labels, seed: int = 0) -> None:
    """Make a random TARS classifier answer differently for different (label, text) pairs: the tiny BERT's
    document embeddings barely differ between pairs (a random head then says NO to all), so its decoder is set
    to read the direction in which they do differ, centred, with YES for about half of the pairs."""
    import torch
    from flair.data import Sentence

    sentences = [Sentence(text) for text in texts]
    pairs = [tars._get_tars_formatted_sentence(label, s) for label in labels for s in sentences]
    tars.tars_model.embeddings.embed(pairs)
    vectors = torch.stack([pair.embedding for pair in pairs]).detach()
    centred = vectors - vectors.mean(0)
    direction = torch.randn(vectors.shape[1], generator=torch.Generator().manual_seed(seed))
    logits = centred @ direction
    scale = 2.0 / float(logits.std())
    yes = tars.tars_model.label_dictionary.get_idx_for_item("YES")
    with torch.no_grad():
        decoder = tars.tars_model.decoder
        decoder.weight.zero_()
        decoder.bias.zero_()
        decoder.weight[yes] = direction * scale
        decoder.bias[yes] = -float(vectors.mean(0) @ direction) * scale
    for pair in pairs:
        pair.clear_embeddings()


def build_token_classifier(embeddings, cls: str = "TokenClassifier", seed: int = 0):
    """A random Flair TokenClassifier (or WordTagger, its older name) of BIOES entity tags over ``embeddings``,
    its decoder scaled so that it labels spans of several kinds."""
    import flair
    import flair.models
    import torch

    flair.set_seed(seed)
    model = getattr(flair.models, cls)(embeddings, _span_tags(), "ner")
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model.eval()


def build_text_pair_model(embeddings, kind: str = "classifier", embed_separately: bool = False, seed: int = 0):
    """A random Flair TextPairClassifier (entailment labels) or TextPairRegressor (a similarity value) over
    document ``embeddings``, its decoder scaled so that it tells pairs apart."""
    import flair
    from flair.data import Dictionary
    from flair.models import TextPairClassifier, TextPairRegressor

    flair.set_seed(seed)
    if kind == "classifier":
        labels = Dictionary(add_unk=False)
        for label in ("entailment", "neutral", "contradiction"):
            labels.add_item(label)
        model = TextPairClassifier(
            embeddings, label_type="entailment", label_dictionary=labels, embed_separately=embed_separately
        )
    else:
        model = TextPairRegressor(embeddings, label_type="similarity", embed_separately=embed_separately)
    model.eval()
    from flair.data import Sentence, TextPair

    texts = [f"{word} {other} is here ." for word, other in zip(_vocabulary()[:24], _vocabulary()[24:48])]
    spread_decoder(model, [TextPair(Sentence(a), Sentence(b)) for a, b in zip(texts, texts[::-1])], seed=seed)
    return model


def spread_decoder(model, data_points, seed: int = 0) -> None:
    """Make a random model's answers differ between inputs: tiny random encoders give nearly the same vector for
    every input, and a random decoder then answers the same for all. The decoder is set to read random directions
    of what it receives on ``data_points`` (captured in Flair's own predict), centred and scaled to unit-ish
    logits."""
    import torch

    captured = []
    handle = model.decoder.register_forward_hook(lambda module, args, out: captured.append(args[0].detach()))
    try:
        model.predict(data_points, label_name="_spread")
    finally:
        handle.remove()
    vectors = torch.cat(captured)
    mean = vectors.mean(0)
    decoder = model.decoder
    directions = torch.randn(decoder.out_features, decoder.in_features, generator=torch.Generator().manual_seed(seed))
    scale = 2.0 / ((vectors - mean) @ directions.T).std(0)
    with torch.no_grad():
        decoder.weight.copy_(directions * scale[:, None])
        decoder.bias.copy_(-(mean @ directions.T) * scale)


def build_relation_extractor(entity_label_type: str = "ner", seed: int = 3):
    """A random Flair RelationExtractor over word embeddings, reading ``entity_label_type`` entities; its
    label dictionary has "O" (no relation), as a trained one has, and its decoder scaled so that it tells
    pairs apart."""
    import flair
    import torch
    from flair.data import Dictionary
    from flair.models import RelationExtractor

    flair.set_seed(seed)
    labels = Dictionary(add_unk=False)
    for label in ("O", "born_in", "works_for", "located_in"):
        labels.add_item(label)
    model = RelationExtractor(
        build_tiny_word_embeddings(seed=seed),
        label_type="relation",
        entity_label_type=entity_label_type,
        label_dictionary=labels,
    )
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(5.0)
    return model.eval()


def build_relation_classifier(tagger, seed: int = 3):
    """A random Flair RelationClassifier over pooled word embeddings (Flair's default entity markers), reading
    the entities ``tagger`` labels; its decoder spread over relations of sample sentences the tagger labeled."""
    import flair
    from flair.data import Dictionary, Sentence
    from flair.embeddings import DocumentPoolEmbeddings
    from flair.models import RelationClassifier

    flair.set_seed(seed)
    labels = Dictionary(add_unk=False)
    for label in ("O", "born_in", "works_for", "located_in"):
        labels.add_item(label)
    model = RelationClassifier(
        DocumentPoolEmbeddings([build_tiny_word_embeddings(seed=seed)]),
        label_dictionary=labels,
        label_type="relation",
        entity_label_types=tagger.label_type,
    ).eval()
    words = _vocabulary()
    samples = [Sentence(" ".join(words[i : i + 7]) + " .") for i in range(0, 42, 7)]
    tagger.predict(samples)
    spread_decoder(model, samples, seed=seed)
    return model
