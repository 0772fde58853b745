"""Hold back a streamed model answer until it has been scanned, then release it redacted and restored.

The gateway streams the model's answer to the client, but a secret, a leaked canary or a piece of PII must
not go out before the pipeline has seen it, not even its first characters. `StreamGuard` therefore keeps
the raw answer and releases a prefix of it only after a scan covered that prefix, and only up to
``holdback_chars`` before the end of what has arrived, so that a value still being written (a key, a
canary, an e-mail address) is seen whole before any part of it leaves.

Release rules, applied after every scan (see `StreamGuard` for the parameters):

1. A scan runs once ``scan_every_chars`` new characters have arrived (or more, when text is held for long:
   see 6) over the window ``received[max(0, released_upto - context_chars):]``; findings index that
   window and are shifted back into the answer.
2. A BLOCK verdict ends the stream: `GuardStep.blocked` is set and nothing more is ever released.
3. The release boundary is ``len(received) - holdback_chars``; nothing past it goes out.
4. The boundary never cuts a redacted span: it moves back to the span's start. Nor does it cut a run of
   printable ASCII non-space characters that touches it (a token, key, URL or e-mail address that may still
   be growing) unless that run is over `MAX_WORD_HOLD_CHARS` long.
5. Redacted spans (those the pipeline replaced in ``sanitized``) in the released part become placeholders
   numbered like `bartizan.redaction.redact` numbers them over the whole answer; the gateway's own prompt
   placeholders are then restored on the model's text (never on the guard's placeholders: a number that
   the prompt mapping already uses is skipped, so that a redacted value can never turn into the user's).
6. While more than ``holdback_chars`` stay unreleased (rule 4 held them), the next scan waits for as many
   new characters as are held beyond the hold-back, so that the work stays linear in the answer's length.
7. `StreamGuard.finish` scans the whole answer once and releases the rest under rules 2 and 5.

A span found only after its start went out (a value longer than the hold-back that rule 4 did not cover)
is redacted from the release boundary on and counted in `StreamGuard.late_redactions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bartizan.gateway.placeholders import PlaceholderRestorer
from bartizan.redaction import merge_spans, redact
from bartizan.types import ScanResult, Verdict

MAX_WORD_HOLD_CHARS = 2048  # longest token-like run held back whole (rule 4); longer runs stream on
_OPENING_STEP = 4  # scan rhythm (characters) before the first release; see `feed`

_Redaction = tuple[int, int, str]  # start, end (answer offsets), label


@dataclass
class GuardStep:
    """What one `StreamGuard.feed` or `finish` call decided."""

    released: str  # text to send to the client now (already restored, already redacted)
    blocked: ScanResult | None = None  # set when the stream must end with an error event
    results: list[ScanResult] = field(default_factory=list)  # scans run in this step (for audit/metrics)


def redacted_spans(text: str, result: ScanResult) -> list[_Redaction]:
    """The merged (start, end, label) spans of `text` that `result` redacted, in `text`'s offsets.

    The pipeline lists them in ``result.redactions``. A `ScanResult` built without that list (an older or a
    foreign producer) still names one ``"<detector>: <category> (<rule>) -> redact"`` reason per redacted
    finding: the spans of those findings are used when they rebuild ``result.sanitized`` exactly, otherwise
    every finding's spans are redacted: too much rather than too little.
    """
    if result.redactions:
        return merge_spans(result.redactions)
    if result.sanitized == text:
        return []
    reasons = {r for r in result.reasons if r.endswith(" -> redact")}
    chosen = [
        (span, f.category)
        for f in result.findings
        if f"{f.detector}: {f.category} ({f.rule_id or f.evidence}) -> redact" in reasons
        for span in f.spans
    ]
    if redact(text, chosen) == result.sanitized:
        return merge_spans(chosen)
    return merge_spans((span, f.category) for f in result.findings for span in f.spans)


class _Renderer:
    """Turns raw answer text plus redacted spans into client text; keeps the numbering across the answer."""

    def __init__(self, restore: Mapping[str, str] | None) -> None:
        self._restorer = PlaceholderRestorer(restore) if restore else None
        self._taken = frozenset(restore or ())
        self._numbers: dict[tuple[str, str], int] = {}
        self._last: dict[str, int] = {}

    def placeholder(self, label: str, value: str) -> str:
        """``[LABEL_n]``: the same value keeps its number; numbers the prompt mapping uses are skipped."""
        tag = label.upper()
        key = (tag, value)
        if key not in self._numbers:
            n = self._last.get(tag, 0) + 1
            while f"[{tag}_{n}]" in self._taken:
                n += 1
            self._last[tag] = n
            self._numbers[key] = n
        return f"[{tag}_{self._numbers[key]}]"

    def text(self, raw: str) -> str:
        return self._restorer.feed(raw) if self._restorer else raw

    def cut(self) -> str:
        """Nothing can continue a placeholder past this point: release what the restorer held."""
        return self._restorer.flush() if self._restorer else ""

    def render(self, raw: str, spans: list[tuple[int, int, str, str]]) -> str:
        """`raw` with each (start, end, label, whole value) span, sorted and disjoint, replaced."""
        pieces: list[str] = []
        pos = 0
        for a, b, label, value in spans:
            pieces.append(self.text(raw[pos:a]))
            pieces.append(self.cut())
            pieces.append(self.placeholder(label, value))
            pos = b
        pieces.append(self.text(raw[pos:]))
        return "".join(pieces)


def users_own(text: str, spans: list[_Redaction], restore: Mapping[str, str] | None) -> list[_Redaction]:
    """`spans` without those whose text is exactly a value the user sent in this request (a reply to the
    address the user gave, a tool call that carries it): that is the user's own data going where they
    asked, and redacting it would break the answer (a mail "to [EMAIL_2]"). Any other value stays redacted."""
    if not restore:
        return spans
    own = set(restore.values())
    return [sp for sp in spans if text[sp[0] : sp[1]] not in own]


def render_answer(text: str, result: ScanResult, restore: Mapping[str, str] | None = None) -> str:
    """A whole (non-streamed) answer as `StreamGuard` would release it: redacted like the stream, then restored.

    The caller handles a BLOCK verdict; this only renders. Without `restore` it equals ``result.sanitized``.
    """
    renderer = _Renderer(restore)
    spans = [(a, b, label, text[a:b]) for a, b, label in users_own(text, redacted_spans(text, result), restore)]
    return renderer.render(text, spans) + renderer.cut()


def _token_char(c: str) -> bool:
    return "!" <= c <= "~"


class StreamGuard:
    """Releases a streamed answer only after a scan covered it; see the module docstring for the rules.

    `scan` is the pipeline scan for the assistant role, e.g. ``lambda t: firewall.scan(t, Role.ASSISTANT,
    canaries=canaries)``. `restore` maps the gateway's prompt placeholders to the user's values. A `scan`
    that raises propagates (the caller ends the stream); nothing is released for the text it was given.
    Not thread-safe: one instance per streamed answer, fed from one task.
    """

    def __init__(
        self,
        scan: Callable[[str], ScanResult],
        *,
        holdback_chars: int = 64,
        scan_every_chars: int = 32,
        context_chars: int = 512,
        restore: Mapping[str, str] | None = None,
    ) -> None:
        if holdback_chars < 0 or context_chars < 0 or scan_every_chars < 1:
            raise ValueError("holdback_chars and context_chars must be >= 0, scan_every_chars >= 1")
        self._scan = scan
        self._holdback = holdback_chars
        self._every = scan_every_chars
        self._context = context_chars
        self._renderer = _Renderer(restore)
        self._restore = restore
        self._parts: list[str] = []  # the whole answer, joined on demand
        self._len = 0
        # The answer from `_tail_start` on, plus deltas not yet appended: windows are cut from it, so that
        # no step copies the whole answer.
        self._tail = ""
        self._tail_start = 0
        self._pending: list[str] = []
        self._released_upto = 0  # answer offset: everything before it has been released (or redacted)
        self._since_scan = 0
        self._held_excess = 0  # characters held beyond the hold-back after the last scan (rule 6)
        self._opened = False  # set by the first scan after the answer outgrew the hold-back
        self._blocked: ScanResult | None = None
        self._finished = False
        self.scans = 0  # scans run so far, the final one included
        self.late_redactions = 0  # redacted spans that started in already released text

    @property
    def text(self) -> str:
        """Everything received (raw model text, before restoration)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def blocked(self) -> ScanResult | None:
        """The blocking scan, once the stream is blocked."""
        return self._blocked

    @property
    def released_upto(self) -> int:
        """Offset in `text` up to which the answer has been released (or redacted)."""
        return self._released_upto

    def feed(self, delta: str) -> GuardStep:
        """Take the next piece of the answer; release what is now scanned and safe."""
        if self._finished:
            raise RuntimeError("StreamGuard.feed after finish")
        if not delta:
            return GuardStep("", self._blocked)
        self._parts.append(delta)
        self._pending.append(delta)
        self._len += len(delta)
        self._since_scan += len(delta)
        if self._blocked is not None:
            return GuardStep("", self._blocked)
        # Until the first text has left, scan every few characters once the answer outgrows the hold-back,
        # so that the first text leaves after about `holdback_chars`, not `holdback_chars + scan_every_chars`
        # (time to first token); then back to the regular rhythm.
        if not self._opened and self._holdback < self._len <= self._holdback + 2 * self._every:
            need = min(self._every, _OPENING_STEP)  # bounded: at most 2 * every / step extra scans
        else:
            need = max(self._every, self._held_excess)
        if self._since_scan < need:
            return GuardStep("")
        # Rule 1: the window starts `context_chars` before the release point.
        w0 = max(0, self._released_upto - self._context)
        self._tail = self._tail[w0 - self._tail_start :] + "".join(self._pending)
        self._tail_start = w0
        self._pending.clear()
        window = self._tail
        result = self._run(window)
        if result.verdict is Verdict.BLOCK:  # rule 2
            self._blocked = result
            return GuardStep("", result, [result])
        spans = users_own(window, redacted_spans(window, result), self._restore)  # window offsets
        end = self._boundary(window, w0, self._len - self._holdback, spans)
        released = self._release(window, w0, end, spans)
        self._opened = self._opened or bool(released)
        self._held_excess = max(0, self._len - self._released_upto - self._holdback)
        return GuardStep(released, None, [result])

    def finish(self) -> GuardStep:
        """Final scan of the WHOLE answer (not just a window), then release the rest."""
        if self._finished:
            return GuardStep("", self._blocked)
        self._finished = True
        if self._blocked is not None:
            return GuardStep("", self._blocked)
        text = self.text
        self._tail, self._tail_start, self._pending = "", 0, []
        result = self._run(text)
        if result.verdict is Verdict.BLOCK:
            self._blocked = result
            return GuardStep("", result, [result])
        released = self._release(text, 0, len(text), users_own(text, redacted_spans(text, result), self._restore))
        return GuardStep(released + self._renderer.cut(), None, [result])

    # --- internals ------------------------------------------------------------------------------------
    def _run(self, window: str) -> ScanResult:
        self._since_scan = 0
        self.scans += 1
        return self._scan(window)

    def _boundary(self, window: str, w0: int, boundary: int, spans: list[_Redaction]) -> int:
        """Rules 3 and 4: the furthest safe release point (an answer offset) at or before `boundary`."""
        lo = self._released_upto
        if boundary <= lo:
            return lo
        boundary = self._outside_spans(boundary, w0, spans)
        if boundary <= lo:
            return lo
        # A token-like run that reaches the boundary may be a credential still being written.
        i = boundary - w0  # window index of the boundary
        if _token_char(window[i - 1]) and (i == len(window) or _token_char(window[i])):
            floor = max(lo, boundary - MAX_WORD_HOLD_CHARS) - w0
            j = i - 1
            while j > floor and _token_char(window[j - 1]):
                j -= 1
            if j > floor or j + w0 == lo:
                boundary = self._outside_spans(j + w0, w0, spans)
        return max(boundary, lo)

    def _outside_spans(self, boundary: int, w0: int, spans: list[_Redaction]) -> int:
        """Move `boundary` back to the start of a redacted span it would cut (spans are sorted, disjoint)."""
        for a, b, _ in spans:
            if a + w0 < boundary < b + w0:
                return max(a + w0, self._released_upto)
        return boundary

    def _release(self, window: str, w0: int, end: int, spans: list[_Redaction]) -> str:
        """Release the answer from `released_upto` to `end` with the redacted spans in it replaced (rule 5)."""
        start = self._released_upto
        if end <= start:
            return ""
        inside: list[tuple[int, int, str, str]] = []
        for a, b, label in spans:
            a, b = a + w0, b + w0
            if b <= start or a >= end:
                continue  # already released (seen again in the context) or not due yet
            if a < start:
                self.late_redactions += 1
            # Clipped to the range, numbered by the whole value as the non-streamed redaction numbers it.
            inside.append((max(a, start) - start, min(b, end) - start, label, window[a - w0 : b - w0]))
        self._released_upto = end
        return self._renderer.render(window[start - w0 : end - w0], inside)
