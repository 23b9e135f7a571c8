"""Fidelity of the character-LM variants on a trained classic tagger (see examples/train_classic_tagger.py).

For Flair's own model and each bundle variant (onnx and torchscript, fp32 and int8), on the first N sentences
of a labeled CoNLL file at batch 32: entity F1 against the original's own output (agreement), the number of
sentences with the same entities, gold F1, and for the int8 variants the share of sentences whose entities are
the same alone (batch 1) as in batches of 32. Speed is the benchmark's (`flair-mlflow bench --shape ...`).

    python examples/classic_int8_fidelity.py --model /tmp/trained.pt \\
        --conll ../shared/data/wikiann-en/test.conll --sentences 1500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "onnx fp32": {"backend": "onnx"},
    "onnx int8 (DynamicQuantizeLSTM)": {"backend": "onnx", "onnx": {"quantize": "int8"}},
    "torchscript fp32": {"backend": "torchscript"},
    "torchscript int8 (PyTorch dynamic)": {"backend": "torchscript", "torchscript": {"quantize": "int8"}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--conll", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from flair.data import Sentence

    from exporter import ExportConfig, OnnxOptions, ParityConfig, TorchScriptOptions, load_bundle, save_bundle
    from exporter.format.modelfile import load_flair_model
    from exporter.quality.metrics import load_examples, score
    from exporter.quality.parity import token_spans

    torch.set_num_threads(args.threads)
    data = load_examples(args.conll, "sequence-tagging", limit=args.sentences)

    def spans(model, batch_size):
        sentences = [Sentence(list(t)) for t in data.tokens]
        model.predict(sentences, mini_batch_size=batch_size)
        return [frozenset(token_spans(s, model.label_type)) for s in sentences]

    original = load_flair_model(args.model)
    started = time.perf_counter()
    reference = spans(original, 32)
    print("| variant | agreement (entity F1 vs original) | same entities | gold F1 | alone = batched |")
    print("| --- | ---: | ---: | ---: | ---: |")
    gold = score(data.gold, reference, "sequence-tagging")["f1_micro"]
    print(f"| flair-pytorch | 1.0000 | {len(reference)}/{len(reference)} | {gold:.4f} | |", flush=True)
    with tempfile.TemporaryDirectory() as work:
        for number, (name, options) in enumerate(VARIANTS.items()):
            config = ExportConfig(
                backend=options["backend"],
                onnx=OnnxOptions(**options.get("onnx", {})),
                torchscript=TorchScriptOptions(**options.get("torchscript", {})),
                parity=ParityConfig(enabled=False),
            )
            model = load_bundle(save_bundle(original, Path(work) / f"variant-{number}", config).path)
            batched = spans(model, 32)
            agreement = score(reference, batched, "sequence-tagging")["f1_micro"]
            same = sum(a == b for a, b in zip(reference, batched))
            gold = score(data.gold, batched, "sequence-tagging")["f1_micro"]
            alone = ""
            if "int8" in name:
                alone = f"{sum(a == b for a, b in zip(spans(model, 1), batched)) / len(batched):.4f}"
            print(f"| {name} | {agreement:.4f} | {same}/{len(batched)} | {gold:.4f} | {alone} |", flush=True)
    print(f"\n{len(reference)} sentences of {args.conll.name}, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
