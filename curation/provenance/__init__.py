"""Provenance: is a model, or a body of text, derived from one of our training runs?

- ``membership``: per-example membership scores for causal LMs (loss, zlib, reference, Min-K%, Min-K%++);
  every scorer is ``(adapter, model, frame) -> example_id, score`` with higher = more member-like.
- ``palimpsest``: the palimpsestic query test (Spearman of training position against reference-normalised loss)
  and the two observational tests (span overlap; retraining the last phase on reshuffled orders).
- ``suspects``: load suspects (checkpoint or ``models:/`` URI) and run the query test for each.
- ``observe``: read suspect text files and run the observational tests on each (the stage's and CLI's entry point).
- ``retrain``: the explicit-order training loop used by observational test (b) and to derive demo suspects.
- ``generate``: sampling suspect text (and prompt-matched control text) from a byte-level GPT.
- ``testbed``: tiny-GPT ground truth (our run, derived and independent models) for tests and benchmarks.
- ``config``: the ``provenance_suspects`` and ``test_provenance`` stage configs (``observe`` block included).
"""
