"""The README's examples, found by their markers so that tests can run them as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def marked_section(name: str) -> str:
    """The text between `<!-- name:begin -->` and `<!-- name:end -->`."""
    found = re.search(
        rf"<!-- {re.escape(name)}:begin -->(.*?)<!-- {re.escape(name)}:end -->", README.read_text(), re.S
    )
    assert found is not None, f"README.md lost its {name} markers"
    return found.group(1)


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced ```language blocks in `text`, in order."""
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```$", text, re.S | re.M)
