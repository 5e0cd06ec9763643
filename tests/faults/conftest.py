from __future__ import annotations

import os
import random

import pytest


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> int:
    """The seed of a test's random choices; ARTSTORE_FAULT_SEED replays a failing run."""
    seed = int(os.environ.get("ARTSTORE_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
    # Printed so it appears in the report of a failing test; rerun with ARTSTORE_FAULT_SEED=<seed>.
    print(f"{request.node.nodeid}: ARTSTORE_FAULT_SEED={seed}")
    return seed
