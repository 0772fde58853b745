"""Put the user's own values back where the model repeated the gateway's placeholders.

Before a prompt goes upstream the gateway replaces PII and secrets with typed placeholders such as
``[EMAIL_1]`` (see `bartizan.redaction`). A model that answers "I wrote to [EMAIL_1]" should reach the
user as "I wrote to alice@example.com". In a streamed answer a placeholder may arrive in pieces
(``[EMA`` + ``IL_1]``), so `PlaceholderRestorer` holds back a trailing piece of text only while it can
still become one of the known placeholders; anything else, even text starting with ``[``, goes out at once.
Unknown placeholders pass through unchanged. Restored values are the user's own data: they are emitted
as they are and never re-read by the restorer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class PlaceholderRestorer:
    """Replaces gateway placeholders such as [EMAIL_1] (see bartizan/redaction.py) with the original values in
    streamed text, even when a placeholder is split across chunks; holds back a trailing partial placeholder.

    One instance per streamed answer. `feed` may be called any number of times, `flush` at every point where
    no placeholder can continue (end of stream, or text the caller inserts itself) and then `feed` again.
    """

    __slots__ = ("_buf", "_longest", "_mapping", "_pattern", "_prefixes")

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = {k: v for k, v in mapping.items() if k}
        # Proper prefixes of the placeholders: a tail of the text that is one of them may still complete one.
        self._prefixes = frozenset(k[:i] for k in self._mapping for i in range(1, len(k)))
        self._longest = max((len(k) for k in self._mapping), default=0)
        self._buf = ""
        # Longest first, so that of two placeholders starting at one position the longer wins.
        keys = sorted(self._mapping, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(k) for k in keys)) if keys else None

    @property
    def pending(self) -> str:
        """Text received but held back (a possible placeholder start); raw, not restored."""
        return self._buf

    def feed(self, text: str) -> str:
        """Returns text safe to emit now (restored)."""
        if self._pattern is None:
            return text
        buf = self._buf + text
        pieces: list[str] = []
        pos = 0
        for m in self._pattern.finditer(buf):
            if m.end() == len(buf) and m.group() in self._prefixes:
                break  # complete, but also the start of a longer placeholder: wait for more text
            pieces.append(buf[pos : m.start()])
            pieces.append(self._mapping[m.group()])
            pos = m.end()
        hold = self._hold_from(buf, pos)
        pieces.append(buf[pos:hold])
        self._buf = buf[hold:]
        return "".join(pieces)

    def flush(self) -> str:
        """End of stream: whatever is held back, restored if complete."""
        buf, self._buf = self._buf, ""
        return restore(buf, self._mapping) if self._pattern is not None else buf

    def _hold_from(self, buf: str, start: int) -> int:
        """Start of the longest tail of `buf[start:]` that is a proper prefix of a placeholder (else len)."""
        n = len(buf)
        for k in range(min(self._longest - 1, n - start), 0, -1):
            if buf[n - k :] in self._prefixes:
                return n - k
        return n


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """`text` with every complete placeholder of `mapping` replaced by its value (the non-streamed case)."""
    keys = sorted((k for k in mapping if k), key=len, reverse=True)
    if not keys:
        return text
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    return pattern.sub(lambda m: mapping[m.group()], text)
