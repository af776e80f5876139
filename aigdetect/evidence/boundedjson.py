"""JSON from untrusted text with its size and nesting depth checked before ``json.loads`` sees it.

``json.loads`` recurses once per level of nesting and allocates for the whole input, so both are
bounded first: the length by comparison, the depth by one linear scan over the characters that
matter (brackets, quotes and backslashes), which never backtracks whatever the input.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .findings import MetadataError

_TOKENS = re.compile(r'[\[\]{}"\\]')


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside strings (a malformed string ends at the end of the text)."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for token in _TOKENS.finditer(text):
        at = token.start()
        if at == escaped_at:
            continue
        char = token.group()
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(text: str, *, what: str, max_chars: int, max_depth: int) -> Any:
    """Parse JSON ``text`` (named ``what`` in errors) within the caps.

    Raises:
        MetadataError: ``too-large`` over ``max_chars``, ``too-deep`` nested deeper than
            ``max_depth``, ``malformed`` when it is not JSON.
    """
    if len(text) > max_chars:
        raise MetadataError("too-large", f"{what} of {len(text)} characters exceeds {max_chars}")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise MetadataError("too-deep", f"{what} is nested {depth} levels deep, more than {max_depth}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MetadataError("malformed", f"{what} is not JSON ({exc})") from None
