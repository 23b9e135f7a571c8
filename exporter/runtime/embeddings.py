"""Flair embeddings that run an exported transformer encoder and keep Flair's own code around it.

Flair's ``TransformerEmbeddings.forward`` calls the Hugging Face model exactly once
(``self.model(input_ids, attention_mask=...)[-1]``, the tuple of hidden states) and does everything else,
layer selection, ``layer_mean``, recombining strided long sentences and subtoken pooling, in plain torch.
We keep that code and swap only ``self.model`` for an :class:`EncoderProxy` that runs the accelerated
encoder. The encoder returns only the hidden states Flair's ``layers`` setting asks for, and the
embedding's ``layer_indexes`` are translated to positions in that shorter tuple.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import torch
from flair.embeddings import DocumentEmbeddings, TokenEmbeddings, TransformerEmbeddings
from flair.embeddings.transformer import TransformerBaseEmbeddings

from exporter.errors import BundleError, FlairMlflowError
from exporter.runtime.buckets import AS_PADDED, BUCKETED, Batching, Encoder, run_in_groups
from exporter.runtime.fastpath import pool_token_embeddings
from exporter.runtime.invariance import mark_canonical
from exporter.runtime.settings import EmbeddingSettings

__all__ = [
    "AcceleratedTransformerDocumentEmbeddings",
    "AcceleratedTransformerWordEmbeddings",
    "EncoderProxy",
    "build_accelerated_embeddings",
]


class EncoderProxy(torch.nn.Module):
    """Stands where Flair expects the Hugging Face model; runs an accelerated encoder instead."""

    def __init__(self, encoder: Encoder, settings: EmbeddingSettings, batching: Batching = BUCKETED) -> None:
        super().__init__()
        self.encoder = encoder
        # static shapes (force_max_length) must reach the encoder as they are
        self.batching = AS_PADDED if settings.force_max_length else batching
        mark_canonical(self, self.batching.invariant)
        self._executor: ThreadPoolExecutor | None = None
        self.config = SimpleNamespace(
            model_type=settings.model_type,
            num_hidden_layers=settings.num_hidden_layers,
            hidden_size=settings.hidden_size,
        )
        self.name_or_path = settings.base_model_name

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **unused: Any):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # one plain call when neither buckets nor workers are on (run_in_groups decides)
        hidden_states = tuple(
            run_in_groups(
                self.encoder,
                input_ids,
                attention_mask,
                self.config.hidden_size,
                buckets=self.batching.buckets,
                executor=self.executor,
                workers=self.batching.workers,
                max_rows=self.batching.max_rows,
                invariant=self.batching.invariant,
                width_limit=self.batching.width_limit,
                pad_id=self.batching.pad_id,
            )
        )
        # Flair takes ``[-1]`` of the model output: the tuple of hidden states.
        return (hidden_states,)

    @property
    def executor(self) -> ThreadPoolExecutor | None:
        """The threads that run a batch's parts concurrently (``workers`` above 1), started on first use."""
        if self.batching.workers > 1 and self._executor is None:
            with _EXECUTOR_LOCK:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.batching.workers, thread_name_prefix="flair-mlflow-encoder"
                    )
        return self._executor


_EXECUTOR_LOCK = threading.Lock()


class _AcceleratedMixin:
    """Builds the Flair embedding state without instantiating the transformer."""

    settings: EmbeddingSettings

    def __init__(
        self,
        settings: EmbeddingSettings,
        tokenizer: Any,
        encoder: Encoder,
        batching: Batching = BUCKETED,
    ) -> None:
        TransformerBaseEmbeddings.__init__(
            self,
            name=settings.name,
            tokenizer=tokenizer,
            embedding_length=settings.embedding_length,
            context_length=settings.context_length,
            context_dropout=settings.context_dropout,
            respect_document_boundaries=settings.respect_document_boundaries,
            stride=settings.stride,
            allow_long_sentences=settings.allow_long_sentences,
            fine_tune=False,
            truncate=settings.truncate,
            use_lang_emb=False,
            cls_pooling=settings.cls_pooling,
            is_document_embedding=settings.is_document_embedding,
            is_token_embedding=settings.is_token_embedding,
            force_device=torch.device("cpu"),
            force_max_length=settings.force_max_length,
            feature_extractor=None,
            needs_manual_ocr=False,
            use_context_separator=settings.use_context_separator,
        )
        if tokenizer.model_max_length != settings.model_max_length:
            raise BundleError(
                f"The bundled tokenizer has model_max_length={tokenizer.model_max_length}, the manifest says "
                f"{settings.model_max_length}: the bundle is inconsistent. Export it again."
            )
        self.settings = settings
        self.base_model_name = settings.base_model_name
        self.layer_indexes = settings.layer_positions
        self.layer_mean = settings.layer_mean
        self.subtoken_pooling = settings.subtoken_pooling
        self.static_embeddings = True
        self.model = EncoderProxy(encoder, settings, batching)
        self.eval()

    def forward(
        self,
        input_ids: torch.Tensor,
        sub_token_lengths: torch.LongTensor | None = None,
        token_lengths: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        overflow_to_sample_mapping: torch.Tensor | None = None,
        word_ids: torch.Tensor | None = None,
        **unused: Any,
    ):
        """Flair's forward; for word-only embeddings the lean pooling of :mod:`exporter.runtime.fastpath`."""
        if self.document_embedding or not self.token_embedding or word_ids is None:
            return TransformerEmbeddings.forward(
                self, input_ids, sub_token_lengths, token_lengths, attention_mask, overflow_to_sample_mapping, word_ids
            )

        hidden = self.model(input_ids, attention_mask=attention_mask)[-1]
        if len(hidden) == 1 and len(self.layer_indexes) == 1:
            hidden_states = hidden[0][:, : input_ids.size(1)]
        else:  # Flair's layer selection, unchanged
            hidden_states = torch.stack(hidden)[:, :, : input_ids.size(1)][self.layer_indexes, :, :]
            if self.layer_mean:
                hidden_states = hidden_states.mean(dim=0)
            else:
                hidden_states = torch.flatten(hidden_states.permute((0, 3, 1, 2)), 0, 1).permute((1, 2, 0))
        embeddings = pool_token_embeddings(self, hidden_states, overflow_to_sample_mapping, word_ids, token_lengths)
        return {"token_embeddings": embeddings}

    def to_params(self) -> dict[str, Any]:
        raise FlairMlflowError(
            "Accelerated embeddings are saved as a flair-mlflow bundle, not as a Flair .pt: "
            "use exporter.save_bundle(...) or mlflow_flavor.save_model(...)."
        )

    def train(self, mode: bool = True):
        # The exported encoder is frozen; dropout and context dropout stay off.
        return super().train(False)


class AcceleratedTransformerWordEmbeddings(_AcceleratedMixin, TokenEmbeddings, TransformerEmbeddings):
    """Flair word embeddings whose transformer runs on an accelerated backend."""


class AcceleratedTransformerDocumentEmbeddings(_AcceleratedMixin, DocumentEmbeddings, TransformerEmbeddings):
    """Flair document embeddings whose transformer runs on an accelerated backend."""


def build_accelerated_embeddings(
    settings: EmbeddingSettings,
    tokenizer: Any,
    encoder: Encoder,
    batching: Batching = BUCKETED,
) -> AcceleratedTransformerWordEmbeddings | AcceleratedTransformerDocumentEmbeddings:
    """Return word or document embeddings, as the original embedding was.

    ``batching`` says how each batch is cut into encoder calls (:class:`exporter.runtime.buckets.Batching`: groups
    of similar subtoken length, parts run concurrently, the most rows per call); the default buckets.
    """
    cls = (
        AcceleratedTransformerWordEmbeddings
        if settings.is_token_embedding
        else AcceleratedTransformerDocumentEmbeddings
    )
    return cls(settings, tokenizer, encoder, batching)
