"""Option parsing shared by the CLI's commands (run, test, render, ...).

Pure functions that raise ValueError with the message the user sees; each command
turns that into its own usage error, so every command reads --conf and -p alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def parse_conf(conf_text: str | None, params: Sequence[str]) -> dict[str, Any]:
    """--conf JSON object, then each -p key=value (value parsed as JSON when it is JSON, else a string)."""
    conf: dict[str, Any] = {}
    if conf_text:
        try:
            loaded = json.loads(conf_text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--conf is not valid JSON: {error}") from None
        if not isinstance(loaded, dict):
            raise ValueError("--conf must be a JSON object")
        conf.update(loaded)
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p expects key=value, got {item!r}")
        try:
            conf[key] = json.loads(raw)
        except json.JSONDecodeError:
            conf[key] = raw
    return conf
