"""Train a tagger of ner-english's shape on WikiANN, for the int8 fidelity measurement of the character LMs.

The shape is `exporter.tools.shapes` (100-d word embeddings, forward and backward character LMs of hidden
size 2048 or 1024, reprojection, BiLSTM 256, CRF). What is trained: the reprojection, the BiLSTM, the output
layer and the CRF, on the first ``--sentences`` WikiANN training sentences. What is not: the character LMs
and the word vectors stay random (no pretrained weights reach this machine, and training 2048-wide character
LMs on 2 cores is out of reach); the trained head reads them as fixed features, so the int8 language models'
errors reach the tags through weights fitted to those very features.

The training sentences are embedded once, by the model's own fp32 ONNX bundle (the same hidden states as
Flair's to 1e-7, 2x faster), and the head is then trained with Adam; the trained head goes back into the Flair
model, which is written as plain data (``save_plain``).

    python examples/train_classic_tagger.py --conll ../shared/data/wikiann-en/train.conll --out /tmp/trained.pt
    flair-mlflow int8-report --model /tmp/trained.pt --conll ../shared/data/wikiann-en/test.conll \\
        --sentences 1500 --recipe int8-dynamic
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def read_conll(path: Path, limit: int) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            if current:
                sentences.append(current)
                current = []
            if len(sentences) >= limit:
                break
            continue
        current.append((parts[0], parts[-1]))
    if current and len(sentences) < limit:
        sentences.append(current)
    return sentences


def to_sentence(rows: list[tuple[str, str]]):
    from flair.data import Sentence

    sentence = Sentence([token for token, _ in rows])
    start, kind = None, None
    for i, (_, tag) in enumerate([*rows, ("", "O")]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            sentence[start:i].add_label("ner", kind)
            start, kind = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
    return sentence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conll", type=Path, required=True, help="WikiANN train.conll")
    parser.add_argument("--out", type=Path, required=True, help="where to write the trained tagger (.pt)")
    parser.add_argument("--shape", default="ner-english", help="ner-english or ner-english-fast")
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from exporter import ExportConfig, ParityConfig, load_bundle, save_bundle
    from exporter.format.modelfile import save_plain
    from exporter.tools.shapes import build_shape

    torch.set_num_threads(args.threads)
    rows = read_conll(args.conll, args.sentences)
    texts = [" ".join(token for token, _ in sentence) for sentence in rows]
    original = build_shape(args.shape, texts)
    with tempfile.TemporaryDirectory() as work:
        config = ExportConfig(backend="onnx", parity=ParityConfig(enabled=False))
        trainee = load_bundle(save_bundle(original, Path(work) / "bundle", config).path)
    sentences = [to_sentence(r) for r in rows]
    started = time.perf_counter()
    for i in range(0, len(sentences), 32):
        trainee.embeddings.embed(sentences[i : i + 32])
    print(f"embedded {len(sentences)} sentences in {time.perf_counter() - started:.0f} s", flush=True)
    trainee.train()
    parameters = [p for name, p in trainee.named_parameters() if not name.startswith("embeddings.")]
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    random.seed(0)
    for epoch in range(args.epochs):
        random.shuffle(sentences)
        total, started = 0.0, time.perf_counter()
        for i in range(0, len(sentences), 32):
            loss, count = trainee.forward_loss(sentences[i : i + 32])
            optimizer.zero_grad()
            (loss / max(count, 1)).backward()
            torch.nn.utils.clip_grad_norm_(parameters, 5.0)
            optimizer.step()
            total += float(loss.detach())
        print(
            f"epoch {epoch + 1}: loss {total / len(sentences):.3f} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    trainee.eval()
    missing, unexpected = original.load_state_dict(trainee.state_dict(), strict=False)
    assert not unexpected and all(".lm." in key for key in missing), (missing, unexpected)
    save_plain(original, args.out)
    print(f"trained tagger written to {args.out}")


if __name__ == "__main__":
    main()
