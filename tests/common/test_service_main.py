"""`python -m <service>` with invalid settings: one clear message naming the variables, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("package", "prefix", "label"),
    [
        ("artstore_admin", "ARTSTORE_ADMIN_", "admin"),
        ("artstore_storage", "ARTSTORE_SE_", "storage element"),
        ("artstore_ingester", "ARTSTORE_INGESTER_", "ingester"),
        ("artstore_query", "ARTSTORE_QUERY_", "query"),
    ],
)
def test_invalid_settings_stop_the_service_with_a_clear_message(package: str, prefix: str, label: str):
    env = {name: value for name, value in os.environ.items() if not name.startswith("ARTSTORE_")}
    env[f"{prefix}PORT"] = "0"

    result = subprocess.run(
        [sys.executable, "-m", package], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{label}: invalid settings ({prefix}*):")
    assert "port" in result.stderr
