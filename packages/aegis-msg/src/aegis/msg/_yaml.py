"""A block-style YAML writer for JSON data, so YAML output needs no YAML library."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# YAML: the document is JSON data, so a block-style emitter of a few lines does; strings that
# could read as something else (true, 1.0, a comment, a key) are written double-quoted.
_PLAIN = re.compile(r"[A-Za-z_$][A-Za-z0-9_$./ -]*")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def yaml_text(document: dict[str, Any]) -> str:
    """Return JSON-compatible ``document`` (a non-empty mapping) as block-style YAML."""
    return "\n".join(_yaml_block(document, "")) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and not value.endswith(" ") and value.lower() not in _RESERVED:
            return value
        quoted = json.dumps(value, ensure_ascii=False)
        return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", quoted)
    if isinstance(value, float):
        text = json.dumps(value, allow_nan=False)
        mantissa, e, exponent = text.partition("e")
        # YAML 1.1 readers (PyYAML) need a dot in a float with an exponent.
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    return json.dumps(value)  # null, true, false, integers


def _yaml_block(value: Any, indent: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_yaml_scalar(str(key))}:"
            if item and isinstance(item, dict | list):
                yield head
                yield from _yaml_block(item, indent + "  ")
            else:
                yield f"{head} {_yaml_scalar(item)}"
        return
    for item in value:
        if item and isinstance(item, dict | list):
            lines = _yaml_block(item, indent + "  ")
            yield f"{indent}- {next(lines).lstrip()}"
            yield from lines
        else:
            yield f"{indent}- {_yaml_scalar(item)}"
