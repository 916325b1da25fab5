"""Session fixture: the unlearning testbed (MLP overfit on noisy digits, original + two exact retrains)."""

from __future__ import annotations

import pytest

from curation.unlearning.testbed import Setting, build_setting


@pytest.fixture(scope="session")
def setting() -> Setting:
    return build_setting(0)
