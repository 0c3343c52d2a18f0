"""A run's conf as users write it: a JSON object (--conf, the UI's trigger form, -p values).

One parser for the CLI's option type and the web UI's form, so both refuse the same
input with the same words.
"""

from __future__ import annotations

import json
from typing import Any


def parse_conf_json(text: str) -> dict[str, Any]:
    """A run conf written as JSON: an object; ValueError says what is wrong."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--conf is not valid JSON: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError("--conf must be a JSON object")
    return loaded
