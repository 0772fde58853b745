"""The `pii` detector: each type found with the exact span of its value, the look-alikes it must leave alone
(dates, versions, decimals, Luhn-invalid numbers), folded (fullwidth, invisible) values mapped back to the
original, evidence without digits, and the default pipeline's redaction."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bartizan import taxonomy as tx
from bartizan.detectors.base import ScanContext
from bartizan.detectors.registry import ConfigError, default_registry
from bartizan.pipeline import Firewall
from bartizan.policy.loader import load_policy_text
from bartizan.text.views import TextViews
from bartizan.types import Finding, Message, Role, Verdict


def scan(text: str, **config: object) -> list[Finding]:
    detector = default_registry.get("pii").build(config)
    return detector.scan(ScanContext(Message(role=Role.USER, content=text), TextViews(text)))


def values(text: str, category: str, min_score: float = 0.5, **config: object) -> list[str]:
    """The original text under each finding of `category` at or above `min_score`."""
    out = []
    for f in scan(text, **config):
        if f.category == category and f.score >= min_score:
            (span,) = f.spans
            out.append(text[span.start : span.end])
    return out


def assert_safe(f: Finding, text: str) -> None:
    """Evidence never repeats the value: no run of 3+ digits and no part of an address."""
    assert not re.search(r"[0-9]{3}", f.evidence), f.evidence
    span = f.spans[0]
    value = text[span.start : span.end]
    assert value not in f.evidence
    assert "@" not in f.evidence


# --- cards ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5500 0000 0000 0004", "378282246310005",
     "3782 822463 10005", "6011 1111 1111 1117", "3530111333300000"],
)  # fmt: skip
def test_card_found_with_exact_span(card: str) -> None:
    text = f"Please charge {card} today."
    assert values(text, "card") == [card]


def test_card_evidence_names_brand_and_length_only() -> None:
    text = "card 4111 1111 1111 1111"
    (f,) = scan(text)
    assert f.evidence == "card: visa, 16 digits, Luhn valid"
    assert f.rule_id == "pii.card" and f.atlas == (tx.DATA_LEAKAGE,) and f.owasp == (tx.LLM02,)
    assert f.score >= 0.9
    assert_safe(f, text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn fails
        "id 1234 5678 9012 3456",  # no issuer starts with 1
        "timestamp 1700000000000 ms",
        "ISBN 978-0-306-40615-7",
        "pi is 3.14159265358979323846",
        "see https://support.example.com/articles/4402415568397-Customizing",
        "numbers 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
        "token 2345-6789-1234-5678",  # typed sequence
        "ref A4111111111111111",
    ],
)
def test_card_look_alikes_are_not_cards(text: str) -> None:
    assert values(text, "card", min_score=0.0) == []


def test_card_next_to_expiry_date_and_order_number() -> None:
    assert values("order 12 4111 1111 1111 1111 exp 12 25", "card") == ["4111 1111 1111 1111"]
    assert values("4111 1111 1111 1111 5500 0000 0000 0004", "card") == ["4111 1111 1111 1111", "5500 0000 0000 0004"]


def test_fullwidth_card_found_through_normalized_view_and_mapped_back() -> None:
    card = "４１１１ １１１１ １１１１ １１１１"
    text = f"カード番号は {card} です"
    (f,) = [f for f in scan(text) if f.category == "card"]
    assert f.view == "normalized"
    assert text[f.spans[0].start : f.spans[0].end] == card


# --- e-mail -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("email", ["bob@example.com", "bob.smith+tag@mail.example.co.uk", "o'neil@example.ie"])
def test_email_found_with_exact_span(email: str) -> None:
    text = f"Write to <{email}>, please."
    assert values(text, "email") == [email]


@pytest.mark.parametrize(
    "text",
    [
        "git clone git@github.com:org/repo.git",
        "use icon@2x.png for retina",
        "@property\ndef name(self): ...",
        "npm install left-pad@1.3.0",
        "ssh://deploy@host.example.com/srv",
        "follow @bartizan on social media",
    ],
)
def test_email_look_alikes(text: str) -> None:
    assert values(text, "email", min_score=0.0) == []


def test_email_with_invisible_character_found_and_span_covers_it() -> None:
    text = "mail bob\u200b@example.com now"
    (f,) = scan(text)
    assert f.category == "email" and f.view == "normalized"
    assert text[f.spans[0].start : f.spans[0].end] == "bob\u200b@example.com"
    assert_safe(f, text)


# --- phones -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Call +44 20 7946 0958 now", "+44 20 7946 0958"),
        ("call me at (415) 555-2671 x12 tonight", "(415) 555-2671 x12"),
        ("office 415.555.2671", "415.555.2671"),
        ("Phone: 0490 75 40 81", "0490 75 40 81"),
        ("Fax: 001-518-640-0854", "001-518-640-0854"),
        ("Mobile: 699 956 915", "699 956 915"),
        ("phone 4155552671", "4155552671"),
    ],
)
def test_phone_found_with_exact_span(text: str, phone: str) -> None:
    assert values(text, "phone") == [phone]


@pytest.mark.parametrize(
    "text",
    [
        "released on 2023-01-15 at 10:30",
        "upgrade to version 1.2.3.4",
        "the value 3.14159265 is close to pi",
        "ISBN 978-3-16-148410-0",
        "the years 1990-2000 were good",
        "order number 4155552671 shipped",  # bare digits without a phone word
        "$2001 + 2002 - 2003 = 2000$",
        "(1001001)(1010101)+(989899)(1001001)",
        "e.g. '+1234567890'",
        "699 956 915 apples",
        "coordinates 37.7749, -122.4194",
    ],
)
def test_phone_look_alikes(text: str) -> None:
    assert values(text, "phone") == []


# --- SSN --------------------------------------------------------------------------------------------------
def test_ssn_dashed_with_and_without_context() -> None:
    (f,) = scan("Here's my SSN: 460-89-9847")
    assert f.category == "ssn" and f.score >= 0.9
    assert_safe(f, "Here's my SSN: 460-89-9847")
    assert [f.score for f in scan("ref 460-89-9847")] == [0.8]


def test_ssn_bare_or_spaced_needs_context() -> None:
    assert values("my social security number is 460899847", "ssn") == ["460899847"]
    assert values("SSN 460 89 9847", "ssn") == ["460 89 9847"]
    assert values("invoice 460899847", "ssn", min_score=0.0) == []
    assert values("route 460 89 9847", "ssn", min_score=0.0) == []


@pytest.mark.parametrize("ssn", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"])
def test_ssn_never_assigned_numbers(ssn: str) -> None:
    assert values(f"SSN {ssn}", "ssn", min_score=0.0) == []


# --- IBAN -------------------------------------------------------------------------------------------------
def test_iban_grouped_and_compact() -> None:
    assert values("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "iban") == ["DE89 3704 0044 0532 0130 00"]
    assert values("to GB82WEST12345698765432.", "iban") == ["GB82WEST12345698765432"]
    (f,) = scan("to GB82WEST12345698765432.")
    assert f.evidence == "iban: GB, 22 chars, mod-97 valid"


@pytest.mark.parametrize("text", ["GB82WEST12345698765433", "DE89 3704 0044 0532 0130 0", "XX82WEST12345698765432"])
def test_iban_near_misses(text: str) -> None:
    assert values(text, "iban", min_score=0.0) == []


# --- IP addresses -----------------------------------------------------------------------------------------
def test_ipv4_public_flagged_private_reported_low() -> None:
    found = {text_value: f for f in scan("from 8.8.4.4 and 192.168.1.20") for text_value in [f.evidence]}
    assert set(found) == {"ipv4 address (public)", "ipv4 address (internal)"}
    assert found["ipv4 address (public)"].score >= 0.5 > found["ipv4 address (internal)"].score
    assert values("from 8.8.4.4 and 192.168.1.20", "ip_address") == ["8.8.4.4"]


@pytest.mark.parametrize(
    "text",
    ["version 1.2.3.4", "v1.2.3.4", "release 10.0.19041.1", "1.2.3.4.5", "300.1.1.1", "localhost 127.0.0.1",
     "bind 0.0.0.0", "mask 255.255.255.0", "01.02.2023", "OID 1.3.6.1.4.1"],
)  # fmt: skip
def test_ipv4_look_alikes(text: str) -> None:
    assert values(text, "ip_address", min_score=0.0) == []


def test_ipv6() -> None:
    assert values("peer 2606:4700:4700::1111 up", "ip_address") == ["2606:4700:4700::1111"]
    assert values("doc 2001:db8::8a2e:370:7334", "ip_address", min_score=0.0) == ["2001:db8::8a2e:370:7334"]
    for text in ("at 12:30:45", "mac 00:1A:2B:3C:4D:5E", "std::vector<int>", "loopback ::1"):
        assert values(text, "ip_address", min_score=0.0) == []


# --- crypto wallets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "wallet",
    ["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
     "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"],
)  # fmt: skip
def test_wallets(wallet: str) -> None:
    assert values(f"pay to {wallet} please", "crypto_wallet") == [wallet]


def test_ethereum_without_checksum_needs_context() -> None:
    lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    assert values(f"send 1 ETH to my wallet {lower}", "crypto_wallet") == [lower]
    assert values(f"storage slot {lower}", "crypto_wallet") == []
    broken = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"  # wrong case on the last letter
    assert values(f"wallet {broken}", "crypto_wallet") == []
    assert values("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "crypto_wallet") == []


# --- dates of birth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "date"),
    [("DOB: 03/05/1990", "03/05/1990"), ("my date of birth is 5 March 1990.", "5 March 1990"),
     ("Birthday: 1990-03-05", "1990-03-05"), ("I was born on March 5th, 1990", "March 5th, 1990")],
)  # fmt: skip
def test_date_of_birth(text: str, date: str) -> None:
    assert values(text, "date_of_birth") == [date]


def test_public_figure_birth_date_reported_below_threshold() -> None:
    (f,) = scan("Ada Lovelace (born 10 December 1815) was a mathematician.")
    assert f.category == "date_of_birth" and f.score < 0.5


@pytest.mark.parametrize("text", ["born in 1990", "birthday party on 12/25", "released 03/05/1990", "DOB: 13/13/1990"])
def test_date_of_birth_needs_context_and_a_full_date(text: str) -> None:
    assert values(text, "date_of_birth", min_score=0.0) == []


# --- configuration and safety -----------------------------------------------------------------------------
def test_types_config_limits_the_search() -> None:
    text = "bob@example.com 4111 1111 1111 1111"
    assert {f.category for f in scan(text, types=["email"])} == {"email"}
    with pytest.raises(ConfigError):
        default_registry.get("pii").build({"types": ["passport"]})
    with pytest.raises(ConfigError):
        default_registry.get("pii").build({"unknown": 1})


def test_every_emitted_category_is_declared() -> None:
    declared = set(default_registry.get("pii").categories)
    text = ("bob@example.com +44 20 7946 0958 4111 1111 1111 1111 GB82WEST12345698765432 SSN 460-89-9847 "
            "8.8.4.4 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 DOB: 03/05/1990")  # fmt: skip
    found = {f.category for f in scan(text)}
    assert found == declared


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="0123456789 -.()+@abc:/x\n", max_size=300))
def test_random_numeric_text_never_breaks_and_spans_are_in_bounds(text: str) -> None:
    for f in scan(text):
        (span,) = f.spans
        assert 0 <= span.start < span.end <= len(text)
        assert_safe(f, text)


# --- pipeline ---------------------------------------------------------------------------------------------
def test_pipeline_redacts_valid_card_and_email() -> None:
    result = Firewall().scan("Card 4111 1111 1111 1111, mail bob@example.com")
    assert result.verdict is Verdict.REDACT
    assert result.sanitized == "Card [CARD_1], mail [EMAIL_1]"


def test_pipeline_leaves_invalid_card_alone() -> None:
    result = Firewall().scan("Card 4111 1111 1111 1112")
    assert result.verdict is Verdict.ALLOW
    assert result.sanitized == "Card 4111 1111 1111 1112"


def test_pipeline_flags_ip_without_redacting() -> None:
    result = Firewall().scan("server at 8.8.4.4")
    assert result.verdict is Verdict.FLAG
    assert result.sanitized == "server at 8.8.4.4"


def test_pipeline_redacts_pii_in_assistant_answers_and_custom_policy() -> None:
    result = Firewall().scan("Her SSN is 460-89-9847.", role=Role.ASSISTANT)
    assert result.sanitized == "Her SSN is [SSN_1]."
    policy = load_policy_text("version: 1\ndetectors:\n  pii:\n    action: block\n    config: {types: [iban]}\n")
    fw = Firewall(policy)
    assert fw.scan("IBAN GB82WEST12345698765432").verdict is Verdict.BLOCK
    assert fw.scan("mail bob@example.com").verdict is Verdict.ALLOW


@pytest.mark.parametrize("unit", ["4111 ", "1 ", "1-", "123-45-", "@", "a@", "born 1/1/1990 ", "1.", "::1 ", "0x"])
def test_adversarial_repetition_stays_fast(unit: str) -> None:
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    t0 = time.perf_counter()
    scan(text)
    assert time.perf_counter() - t0 < 2.0
