"""The bundle's ONNX encoder over subtoken rows of any lengths, each row at its canonical width.

Every row is padded to :func:`exporter.runtime.grouping.canonical_width` of its length and runs only with rows of
that width (in calls capped as the Flair path caps them), exactly as the Flair path does with ``batch_invariant``:
the same rows reach ONNX Runtime with the same padding, so a row's hidden states are the Flair path's bit for bit
and never depend on the other texts of a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from exporter.config import RuntimeOptions
from exporter.runtime.grouping import (
    MAX_CALL_ATTENTION,
    MAX_CALL_POSITIONS,
    canonical_groups,
    cap_positions,
    split_for_workers,
)
from exporter.runtime.lean.subtokens import as_array
from exporter.runtime.sessions import inference_session

__all__ = ["LeanEncoder"]


class LeanEncoder:
    """An ONNX Runtime session of ``encoder.onnx`` fed row by row length (thread-safe: ``session.run`` is)."""

    def __init__(self, model_path: Path, runtime: RuntimeOptions, width_limit: int, pad_id: int) -> None:
        self.session, self.providers = inference_session(model_path, runtime)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.width_limit = width_limit
        self.pad_id = pad_id
        self.max_rows = runtime.max_call_rows
        self.workers = runtime.encoder_workers
        self._executor = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="flair-mlflow-lean") if self.workers > 1 else None
        )

    def __call__(self, rows: Sequence[list[int]]) -> list[list[np.ndarray]]:
        """Each row's hidden states per exported layer, ``(len(row), hidden)`` each."""
        calls: list[tuple[int, list[int]]] = []
        for width, group in canonical_groups([len(r) for r in rows], self.width_limit):
            parts = split_for_workers([group], self.workers) if self._executor else [group]
            capped = cap_positions(parts, [width] * len(parts), MAX_CALL_POSITIONS, MAX_CALL_ATTENTION, self.max_rows)
            calls += [(width, part) for part in capped]
        results: list[list[np.ndarray]] = [[] for _ in rows]

        def run(call: tuple[int, list[int]]) -> tuple[list[int], list[np.ndarray]]:
            width, group = call
            ids = as_array([rows[i] for i in group], width, self.pad_id)
            mask = np.zeros_like(ids)
            for k, i in enumerate(group):
                mask[k, : len(rows[i])] = 1
            return group, self.session.run(self.output_names, {"input_ids": ids, "attention_mask": mask})

        done = self._executor.map(run, calls) if self._executor else map(run, calls)
        for group, outputs in done:
            for k, i in enumerate(group):
                results[i] = [o[k, : len(rows[i])] for o in outputs]
        return results
