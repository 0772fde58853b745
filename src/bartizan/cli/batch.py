"""Streaming line readers for batch scans: constant memory, one result (or one error) per input line.

Lines are read as bytes with a length cap, so a huge or binary line costs at most the cap in memory and
is reported as an error on its own line; the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Item:
    """One input line: its text and optional id, or the reason it could not be read."""

    line: int
    text: str | None = None
    id: object = None
    error: str | None = None


def read_lines(stream: BinaryIO, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number, raw bytes without newline) or (line number, None) for a line over the cap."""
    number = 0
    while True:
        raw = stream.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            # Too long: skip the rest of the line in bounded chunks.
            while True:
                rest = stream.readline(_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw


def decode_utf8(raw: bytes) -> tuple[str | None, str | None]:
    """(text, None) or (None, error naming the byte offset of the first invalid sequence)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 at byte {exc.start}"


def parse_object(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """One JSONL line as a JSON object, or (None, what is wrong with it)."""
    text, err = decode_utf8(raw)
    if text is None:
        return None, err
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, "JSON nested too deeply"
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    return obj, None


def parse_jsonl(
    stream: BinaryIO, text_field: str, id_field: str | None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[Item]:
    for number, raw in read_lines(stream, max_line_bytes):
        if raw is None:
            yield Item(number, error=f"line longer than {max_line_bytes} bytes")
            continue
        if not raw.strip():
            yield Item(number, error="empty line")
            continue
        obj, err = parse_object(raw)
        if obj is None:
            yield Item(number, error=err)
            continue
        item_id = obj.get(id_field) if id_field else None
        if text_field not in obj:
            yield Item(number, id=item_id, error=f"field {text_field!r} is missing")
            continue
        value = obj[text_field]
        if not isinstance(value, str):
            yield Item(number, id=item_id, error=f"field {text_field!r} is {type(value).__name__}, not a string")
            continue
        yield Item(number, text=value, id=item_id)


def parse_text_lines(stream: BinaryIO, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Item]:
    for number, raw in read_lines(stream, max_line_bytes):
        if raw is None:
            yield Item(number, error=f"line longer than {max_line_bytes} bytes")
            continue
        text, err = decode_utf8(raw)
        yield Item(number, text=text, error=err)
