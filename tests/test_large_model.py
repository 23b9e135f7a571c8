"""A model over 2 GB: ONNX with external data, every byte in the bundle and the manifest."""

from __future__ import annotations

import shutil

import pytest
from conftest import entities_of

from exporter import ExportConfig, ParityConfig, load_bundle, save_bundle
from exporter.format.manifest import read_manifest

pytestmark = pytest.mark.slow

TEXTS = ["Angela Merkel met Tim Cook in Paris .", "Siemens opened an office in Munich , Germany .", "A short one ."]


def test_xlm_roberta_large_shaped_encoder_exports_with_external_data(tiny_bert, tmp_path):
    import flair
    import torch
    from flair.data import Dictionary
    from flair.embeddings import TransformerWordEmbeddings
    from flair.models import SequenceTagger
    from transformers import XLMRobertaConfig, XLMRobertaModel

    try:
        model_dir = tmp_path / "xlmr-large-random"
        shutil.copytree(tiny_bert, model_dir)  # the tiny word-piece tokenizer is enough to drive it
        (model_dir / "config.json").unlink()
        (model_dir / "model.safetensors").unlink()
        torch.manual_seed(0)
        config = XLMRobertaConfig(
            vocab_size=250_002,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=514,
            type_vocab_size=1,
        )
        XLMRobertaModel(config).save_pretrained(str(model_dir))
        flair.set_seed(0)
        embeddings = TransformerWordEmbeddings(str(model_dir), fine_tune=False, use_context_separator=False)
        assert sum(p.numel() for p in embeddings.model.parameters()) > 550_000_000
        tags = Dictionary(add_unk=False)
        for t in ("O", "S-PER", "B-PER", "E-PER", "I-PER", "S-LOC", "B-LOC", "E-LOC", "I-LOC"):
            tags.add_item(t)
        tagger = SequenceTagger(embeddings, tags, "ner", use_rnn=False, use_crf=True).eval()
        expected = entities_of(tagger, TEXTS)

        info = save_bundle(
            tagger, tmp_path / "bundle", ExportConfig(parity=ParityConfig(), parity_sentences=tuple(TEXTS))
        )
        manifest, _ = read_manifest(info.path)
        assert "encoder.onnx.data" in manifest["files"]
        assert manifest["files"]["encoder.onnx.data"]["size"] > 2_000_000_000
        assert manifest["files"]["encoder.onnx"]["size"] < 10_000_000
        assert manifest["parity"]["identical_sentences"] == len(TEXTS)
        del tagger, embeddings

        moved = tmp_path / "moved"
        shutil.move(str(info.path), moved)
        model = load_bundle(moved)
        assert entities_of(model, TEXTS) == expected
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
