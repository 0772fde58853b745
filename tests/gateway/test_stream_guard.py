"""`StreamGuard` with the real default-policy `Firewall` (assistant role): nothing leaves before a scan covered
it, secrets and canaries never leak even in part, and any chunking releases what the non-streamed scan gives.

No real credential appears here: every token is built at run time from a seeded generator.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan.gateway.stream_guard import MAX_WORD_HOLD_CHARS, GuardStep, StreamGuard, redacted_spans, render_answer
from bartizan.pipeline import Firewall
from bartizan.types import Finding, Role, ScanResult, Span, Verdict

B62 = string.ascii_letters + string.digits
CANARY = "bz-" + "".join(random.Random(3).choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(16))
PROSE = "The quick brown fox jumps over the lazy dog while the answer goes on in plain words. "


def rand(n: int, alphabet: str = B62, seed: int = 7) -> str:
    rng = random.Random(f"{seed}:{n}:{alphabet}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


GITHUB = "ghp_" + rand(36)
AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
JWT = (
    b64url(json.dumps({"alg": "HS256", "typ": "JWT"}))
    + "."
    + b64url(json.dumps({"sub": "1234567890", "name": "Test User", "iat": 1516239022}))
    + "."
    + rand(43, B62 + "-_")
)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + "\n".join(rand(64, B62 + "+/", seed=i) for i in range(4))
    + "\n-----END OPENSSH PRIVATE KEY-----"
)


@pytest.fixture(scope="module")
def fw() -> Firewall:
    return Firewall()


def scanner(fw: Firewall, windows: list[str] | None = None) -> Callable[[str], ScanResult]:
    def scan(text: str) -> ScanResult:
        if windows is not None:
            windows.append(text)
        return fw.scan(text, Role.ASSISTANT, canaries=(CANARY,))

    return scan


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(guard: StreamGuard, chunks: list[str]) -> tuple[list[str], GuardStep]:
    """Feed every chunk (stopping at a block) then finish; the released text after each step, and the last step."""
    out: list[str] = []
    so_far = ""
    for chunk in chunks:
        step = guard.feed(chunk)
        so_far += step.released
        out.append(so_far)
        if step.blocked is not None:
            return out, step
    step = guard.finish()
    out.append(so_far + step.released)
    return out, step


def expected(fw: Firewall, text: str) -> str:
    return fw.scan(text, Role.ASSISTANT, canaries=(CANARY,)).sanitized


# --- release rules ---------------------------------------------------------------------------------------
def test_plain_text_streams_out_held_back_and_only_after_a_scan_covered_it(fw: Firewall) -> None:
    text = PROSE * 12
    windows: list[str] = []
    guard = StreamGuard(scanner(fw, windows))
    received = 0
    for chunk in pieces_of(text, 4):
        step = guard.feed(chunk)
        received += len(chunk)
        assert len(step.results) == (1 if step.results else 0)
        assert guard.released_upto <= max(0, received - 64)
        if step.released:
            # Every released character lay in the window of the scan run in this very step.
            w = windows[-1]
            assert text[:received].endswith(w)
            assert received - len(w) <= guard.released_upto - len(step.released)
    assert guard.released_upto > len(text) - 64 - 32 - 16  # it streamed, not all at the end
    final = guard.finish()
    assert final.blocked is None and len(final.results) == 1
    assert guard.text == text
    assert windows[-1] == text  # the final scan reads the whole answer
    assert max(len(w) for w in windows[:-1]) <= 512 + 64 + 32 + 4


def test_pii_is_redacted_and_numbered_as_in_the_whole_answer(fw: Firewall) -> None:
    text = "Write to alice@example.com. " + PROSE * 10 + "Or bob@example.org, or alice@example.com again. " + PROSE
    for size in (1, 4, 33, len(text)):
        out, last = stream(StreamGuard(scanner(fw)), pieces_of(text, size))
        assert last.blocked is None
        assert out[-1] == expected(fw, text)
        assert out[-1].count("[EMAIL_1]") == 2 and "[EMAIL_2]" in out[-1] and "@" not in out[-1]


@pytest.mark.parametrize("holdback", [0, 8, 64])
@pytest.mark.parametrize("secret", [GITHUB, AWS_ID, JWT], ids=["github", "aws", "jwt"])
def test_a_token_split_into_single_characters_never_leaks_even_in_part(
    fw: Firewall, secret: str, holdback: int
) -> None:
    text = f"Here it is: {secret} - keep it safe. " + PROSE * 3
    out, last = stream(StreamGuard(scanner(fw), holdback_chars=holdback), list(text))
    assert last.blocked is None
    for released in out:
        assert secret[:4] not in released
    assert out[-1] == expected(fw, text)
    assert "[API_KEY_1]" in out[-1] or "[CLOUD_CREDENTIALS_1]" in out[-1] or "[JWT_1]" in out[-1]


def test_a_private_key_longer_than_the_hold_back_is_held_whole(fw: Firewall) -> None:
    text = "Your key:\n" + PEM + "\nStore it well. " + PROSE * 2
    out, _ = stream(StreamGuard(scanner(fw)), list(text))
    for released in out:
        assert "-----" not in released and PEM.splitlines()[1][:8] not in released
    assert out[-1] == expected(fw, text) and "[PRIVATE_KEY_1]" in out[-1]


def test_a_canary_leak_blocks_before_any_of_it_goes_out(fw: Firewall) -> None:
    text = PROSE * 3 + f"My hidden marker is {CANARY}. " + PROSE * 3
    guard = StreamGuard(scanner(fw))
    out, last = stream(guard, list(text))
    assert last.blocked is not None and last.blocked.verdict is Verdict.BLOCK
    assert any(f.category == "canary_leak" for f in last.blocked.findings)
    assert text.startswith(out[-1]) and len(out[-1]) <= text.index(CANARY)
    # Nothing more, ever.
    assert guard.feed("more").released == "" and guard.feed("x").blocked is last.blocked
    end = guard.finish()
    assert end.released == "" and end.blocked is last.blocked and end.results == []


def test_a_block_found_by_the_final_scan_is_still_reported(fw: Firewall) -> None:
    guard = StreamGuard(scanner(fw), scan_every_chars=64)
    released = "".join(guard.feed(c).released for c in pieces_of(PROSE * 4, 4))
    assert released == (PROSE * 4)[: len(released)] and len(released) > len(PROSE * 4) - 64 - 64
    last = guard.feed(CANARY)  # under scan_every_chars new characters: no scan in this step
    assert last.results == [] and last.released == ""
    end = guard.finish()
    assert end.blocked is not None and end.released == "" and guard.blocked is end.blocked


def test_flagged_findings_are_released_unchanged(fw: Firewall) -> None:
    text = "The server is at 203.0.113.9 and mail goes to ops@example.net. " + PROSE
    result = fw.scan(text, Role.ASSISTANT)
    assert {f.category for f in result.findings} >= {"ip_address", "email"}
    assert [label for *_, label in redacted_spans(text, result)] == ["email"]
    out, _ = stream(StreamGuard(scanner(fw)), list(text))
    assert out[-1] == expected(fw, text) and "203.0.113.9" in out[-1] and "[EMAIL_1]" in out[-1]


def test_prompt_placeholders_are_restored_and_never_confused_with_redactions(fw: Firewall) -> None:
    mapping = {"[EMAIL_1]": "alice@example.com"}
    text = "I wrote to [EMAIL_1] and copied carol@example.net; [EMAIL_1] replied. " + PROSE
    for size in (1, 3, 50):
        out, _ = stream(StreamGuard(scanner(fw), restore=mapping), pieces_of(text, size))
        # The user's own address comes back; the model's other address is redacted under a number the
        # prompt did not use, so it cannot be read as the user's.
        assert out[-1].startswith("I wrote to alice@example.com and copied [EMAIL_2]; alice@example.com replied.")
        assert out[-1] == render_answer(text, fw.scan(text, Role.ASSISTANT), mapping)


def test_cjk_text_is_not_held_as_one_word_but_a_long_token_is_until_its_cap(fw: Firewall) -> None:
    cjk = "这是一个很长的回答，没有空格。" * 20
    guard = StreamGuard(scanner(fw))
    released = "".join(guard.feed(c).released for c in pieces_of(cjk, 4))
    assert len(released) >= len(cjk) - 64 - 32
    run = "x" * (MAX_WORD_HOLD_CHARS + 3000)
    guard = StreamGuard(scanner(fw))
    released = "".join(guard.feed(c).released for c in pieces_of(run, 64))
    assert 0 < len(released) and len(run) - len(released) <= MAX_WORD_HOLD_CHARS + 2 * 64
    assert released + guard.finish().released == run


def test_work_stays_linear_in_the_answer_length(fw: Firewall) -> None:
    for text in (PROSE * 250, "y" * 20000, "".join(PEM.splitlines()[1]) * 300):
        windows: list[str] = []
        out, _ = stream(StreamGuard(scanner(fw, windows)), pieces_of(text, 4))
        assert out[-1] == expected(fw, text)
        scanned = sum(len(w) for w in windows[:-1])
        assert scanned <= 25 * len(text), (len(text), len(windows), scanned)


def test_empty_answer_parameters_and_call_order(fw: Firewall) -> None:
    guard = StreamGuard(scanner(fw))
    assert guard.feed("").released == "" and guard.text == ""
    end = guard.finish()
    assert (end.released, end.blocked, guard.scans) == ("", None, 1)
    assert guard.finish() == GuardStep("", None, [])
    with pytest.raises(RuntimeError):
        guard.feed("late")
    for bad in ({"holdback_chars": -1}, {"scan_every_chars": 0}, {"context_chars": -5}):
        with pytest.raises(ValueError):
            StreamGuard(scanner(fw), **bad)  # type: ignore[arg-type]


def test_redacted_spans_come_from_the_result_or_else_from_its_reasons(fw: Firewall) -> None:
    text = "aa alice bb bob cc"
    alice = Finding("pii", "email", 0.9, (Span(3, 8),), "email", "pii.email")
    bob = Finding("pii", "email", 0.4, (Span(12, 15),), "email", "pii.email")
    reason = ("pii: email (pii.email) -> redact",)
    listed = ScanResult(
        Verdict.REDACT, (alice, bob), "aa [EMAIL_1] bb bob cc", {}, {}, 0.0, "", reason, ((Span(3, 8), "email"),)
    )
    assert redacted_spans(text, listed) == [(3, 8, "email")]
    # Without the list: the reasons' findings when they rebuild `sanitized` ...
    rebuilt = ScanResult(Verdict.REDACT, (alice,), "aa [EMAIL_1] bb bob cc", {}, {}, 0.0, "", reason)
    assert redacted_spans(text, rebuilt) == [(3, 8, "email")]
    # ... and when they do not, every finding's spans (too much rather than too little).
    odd = ScanResult(Verdict.REDACT, (alice, bob), "aa [EMAIL_1] bb bob cc", {}, {}, 0.0, "", reason)
    assert redacted_spans(text, odd) == [(3, 8, "email"), (12, 15, "email")]
    real = "Mail ops@example.net from 203.0.113.9"
    assert redacted_spans(real, fw.scan(real, Role.ASSISTANT)) == [(5, 20, "email")]


# --- properties ------------------------------------------------------------------------------------------
_PIECES = st.sampled_from(
    [PROSE, "ok. ", "\n", " alice@example.com ", " bob@example.org, ", f" {GITHUB} ", f" {AWS_ID}\n", "[EMAIL_1] "]
)


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(_PIECES, min_size=1, max_size=14),
    cuts=st.lists(st.integers(1, 900), max_size=40),
    knobs=st.tuples(st.integers(64, 200), st.integers(1, 100), st.integers(64, 600)),
)
def test_any_chunking_releases_exactly_the_non_streamed_result(
    fw: Firewall, parts: list[str], cuts: list[int], knobs: tuple[int, int, int]
) -> None:
    holdback, every, context = knobs
    guard = StreamGuard(scanner(fw), holdback_chars=holdback, scan_every_chars=every, context_chars=context)
    text = "".join(parts)
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds)]
    out, last = stream(guard, chunks)
    assert last.blocked is None
    want = expected(fw, text)
    assert out[-1] == want  # every earlier release is a prefix of it, so no secret's prefix went out first
    mapping = {"[EMAIL_1]": "user@example.com"}
    out, _ = stream(StreamGuard(scanner(fw), restore=mapping), chunks)
    assert out[-1] == render_answer(text, fw.scan(text, Role.ASSISTANT), mapping)


@settings(max_examples=40, deadline=None)
@given(
    before=st.integers(0, 300),
    after=st.integers(0, 200),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_no_part_of_a_canary_goes_out_for_any_chunking(fw: Firewall, before: int, after: int, sizes: list[int]) -> None:
    text = (PROSE * 4)[:before] + " " + CANARY + " " + (PROSE * 3)[:after]
    chunks, pos, i = [], 0, 0
    while pos < len(text):
        n = sizes[i % len(sizes)]
        chunks.append(text[pos : pos + n])
        pos, i = pos + n, i + 1
    out, last = stream(StreamGuard(scanner(fw)), chunks)
    assert last.blocked is not None
    assert text.startswith(out[-1]) and len(out[-1]) <= text.index(CANARY)


def test_first_text_leaves_as_soon_as_the_answer_outgrows_the_hold_back(fw: Firewall) -> None:
    guard = StreamGuard(scanner(fw), holdback_chars=16, scan_every_chars=32, context_chars=256)
    answer = "The weather in Paris is mild today with light rain later on."
    first_at = None
    for i, ch in enumerate(answer, 1):
        if guard.feed(ch).released and first_at is None:
            first_at = i
    assert first_at is not None and first_at <= 16 + 8  # hold-back plus at most the word at the boundary
