"""Lean serving (issue 25): a transformer tagger or text classifier answered with ONNX Runtime, the ``tokenizers``
package and numpy, importing neither Flair nor torch nor transformers.

Each module reproduces one step of what Flair does around the encoder, as Flair does it:

- :mod:`.text`: the sentences, words and offsets of a text (Flair's ``Sentence``, its segtok sentence splitter and
  context links), and the few parts of Flair's data API the pyfunc reads answers from;
- :mod:`.subtokens`: each sentence's subtoken rows (context, FLERT separator, windows over long texts, word ids);
- :mod:`.pooling`: the encoder's hidden states back into word or document vectors (layers, windows, pooling);
- :mod:`.heads`: the tagger's and classifier's heads in numpy (linear layers, PyTorch's LSTM, CRF Viterbi, softmax,
  spans);
- :mod:`.model`: the lean model a bundle's pyfunc serves (``predict`` over sentences), built from the bundle's files.
"""
