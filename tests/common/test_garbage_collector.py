"""The services' garbage-collector tuning, in a fresh interpreter as a service process starts it."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
import artstore_admin.app, artstore_ingester.app, artstore_storage.app  # what a service has loaded
from artstore_common.service import GC_YOUNG_THRESHOLD, tune_garbage_collector

gc.collect()
before = {"walked": len(gc.get_objects(generation=2)), "frozen": gc.get_freeze_count()}
tune_garbage_collector()
after = {"walked": len(gc.get_objects(generation=2)), "frozen": gc.get_freeze_count()}
print(json.dumps({"before": before, "after": after, "young": gc.get_threshold()[0] == GC_YOUNG_THRESHOLD}))
"""


def test_a_full_collection_no_longer_walks_what_existed_before_serving():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    # Before: a full collection walks every long-lived object of the loaded services (tens of thousands).
    assert seen["before"]["frozen"] == 0
    assert seen["before"]["walked"] > 20_000, seen
    # After: they are frozen, and a full collection walks only what was made since (nothing, here).
    assert seen["after"]["frozen"] >= seen["before"]["walked"]
    assert seen["after"]["walked"] < 100, seen
    assert seen["young"] is True
