"""Linear datamodeling score on a 64-128-10 MLP on digits (50 half-size subsets x 2 retrains); slow.

The setup and the retraining live in ``benchmarks/influence/lds_digits.py`` (which also writes every method's LDS
to JSON); this test asserts the acceptance bands on the 100 queries that every method scores (and on their first 20,
the query set of earlier runs): EK-FAC >= 0.75 and the best of our methods >= 0.80. It retrains the 100 ground-truth
models and the TRAK ensembles itself (no cache), so it takes about 20 minutes on 2 cores.
"""

from __future__ import annotations

import pytest

from benchmarks.influence.lds_digits import LDSSetup, run


@pytest.mark.slow
def test_lds_on_digits_mlp():
    methods = run(LDSSetup())["methods"]
    assert methods["ekfac"]["lds"] >= 0.75, methods
    assert methods["ekfac"]["lds_first_queries"] >= 0.75, methods
    assert max(row["lds"] for row in methods.values()) >= 0.80, methods
    assert max(row["lds_first_queries"] for row in methods.values()) >= 0.80, methods
