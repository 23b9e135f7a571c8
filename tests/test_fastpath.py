"""flair-mlflow's faster Viterbi decoding gives exactly what Flair's own gives."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("integers", [False, True])
def test_fast_viterbi_equals_flairs_decoder(tiny_tagger, integers):
    from flair.models.sequence_tagger_utils.viterbi import ViterbiDecoder

    from exporter.runtime.fastpath import FastViterbiDecoder

    flair_decoder = ViterbiDecoder(tiny_tagger.label_dictionary)
    ours = FastViterbiDecoder.replacing(flair_decoder)
    k = flair_decoder.tagset_size
    generator = torch.Generator().manual_seed(int(integers))
    for lengths in ([9, 7, 7, 3, 1], [1], [12, 12, 12], [30, 2]):
        features = torch.randn(len(lengths), max(lengths), k, k, generator=generator) * 3
        transitions = torch.randn(k, k, generator=generator)
        if integers:  # many exact ties: the first maximum must win, as in torch.max
            features, transitions = features.round(), transitions.round()
        args = ((features, torch.tensor(lengths), transitions), False, [None] * len(lengths))
        expected, _ = flair_decoder.decode(*args)
        got, _ = ours.decode(*args)
        assert [[tag for tag, _ in s] for s in got] == [[tag for tag, _ in s] for s in expected]
        for s_got, s_expected in zip(got, expected):
            assert [c for _, c in s_got] == pytest.approx([c for _, c in s_expected], abs=1e-6)
