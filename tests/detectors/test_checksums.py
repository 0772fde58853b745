"""Validators shared by the `pii` and `secrets` detectors, against published test vectors and near misses."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bartizan.detectors import checksums as ck
from bartizan.detectors.pii import tables

IBAN_LENGTHS = tables().data.iban_lengths


# --- Luhn -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("number", ["4111111111111111", "5500000000000004", "378282246310005", "79927398713"])
def test_luhn_accepts_valid_numbers(number: str) -> None:
    assert ck.luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "79927398710", "", "4111-1111", "abcd", "４１１１"])
def test_luhn_rejects_invalid_or_non_digit_input(number: str) -> None:
    assert not ck.luhn_valid(number)


@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_luhn_detects_every_single_digit_change(number: str) -> None:
    """The Luhn check catches any one wrong digit: at most one of the ten digits at a place is valid."""
    valid = [d for d in "0123456789" if ck.luhn_valid(number[:-1] + d)]
    assert len(valid) == 1


# --- IBAN -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "iban", ["GB82WEST12345698765432", "DE89370400440532013000", "NL91ABNA0417164300", "NO9386011117947"]
)
def test_iban_accepts_registry_examples(iban: str) -> None:
    assert ck.iban_valid(iban, IBAN_LENGTHS)


@pytest.mark.parametrize(
    "iban",
    [
        "GB82WEST12345698765433",  # check digits disagree
        "GB82WEST1234569876543",  # one character short for GB
        "ZZ82WEST12345698765432",  # no such country
        "GB82 WEST 1234 5698 7654 32",  # spaces must be removed by the caller
        "gb82west12345698765432",
    ],
)
def test_iban_rejects_near_misses(iban: str) -> None:
    assert not ck.iban_valid(iban, IBAN_LENGTHS)


def test_norway_is_a_country_not_yaml_false() -> None:
    assert IBAN_LENGTHS["NO"] == 15


# --- SSN --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ssn", ["123456789", "001010001", "899999999", "772123456"])
def test_ssn_accepts_assignable_numbers(ssn: str) -> None:
    assert ck.ssn_valid(ssn)


@pytest.mark.parametrize(
    "ssn", ["000123456", "666123456", "900123456", "123001234", "123450000", "078051120", "12345678"]
)
def test_ssn_rejects_numbers_never_assigned(ssn: str) -> None:
    assert not ck.ssn_valid(ssn)


# --- Bitcoin ----------------------------------------------------------------------------------------------
def test_base58check_versions_of_well_known_addresses() -> None:
    assert ck.base58check_version("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2") == 0  # P2PKH
    assert ck.base58check_version("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy") == 5  # P2SH


@pytest.mark.parametrize(
    "address", ["1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN0", "1" * 30]
)
def test_base58check_rejects_bad_checksum_or_alphabet(address: str) -> None:
    assert ck.base58check_version(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",  # BIP-173, P2WPKH, upper case
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",  # BIP-173, P2WSH
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",  # BIP-350, taproot (bech32m)
    ],
)
def test_segwit_accepts_bip_examples(address: str) -> None:
    assert ck.segwit_address_valid(address)


@pytest.mark.parametrize(
    "address",
    [
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",  # one character changed
        "bc1qw508d6qejxtdg4y5r3zarvary0c5XW7KV8F3T4",  # mixed case
        "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",  # another network
        "bc1qqqqqqqq",
    ],
)
def test_segwit_rejects_near_misses(address: str) -> None:
    assert not ck.segwit_address_valid(address)


# --- Ethereum ---------------------------------------------------------------------------------------------
def test_keccak256_known_digests() -> None:
    assert ck.keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert ck.keccak256(b"abc").hex() == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    assert len(ck.keccak256(b"x" * 300)) == 32  # more than one block


@pytest.mark.parametrize(
    "address",  # the mixed-case examples of EIP-55
    [
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "fB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "dbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "D1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_eip55_accepts_specification_examples(address: str) -> None:
    assert ck.eip55_valid(address)
    flipped = address.replace("a", "A", 1) if "a" in address else address.replace("A", "a", 1)
    assert not ck.eip55_valid(flipped)


def test_eip55_single_case_carries_no_checksum() -> None:
    assert not ck.eip55_valid("52908400098527886e0f7030069857d2e4169ee7")
    assert not ck.eip55_valid("52908400098527886E0F7030069857D2E4169EE7")


# --- tokens and layouts -----------------------------------------------------------------------------------
def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def test_jwt_header_must_be_json_with_alg() -> None:
    assert ck.jwt_header_valid(b64url({"alg": "HS256", "typ": "JWT"}) + ".e30.sig")
    assert not ck.jwt_header_valid(b64url({"typ": "JWT"}) + ".e30.sig")
    assert not ck.jwt_header_valid(b64url([1, 2]) + ".e30.sig")
    assert not ck.jwt_header_valid("bm90IGpzb24.e30.sig")


def test_discord_user_id_part_decodes_to_digits() -> None:
    part = base64.urlsafe_b64encode(b"123456789012345678").decode().rstrip("=")
    assert ck.b64_digits(part)
    assert not ck.b64_digits(base64.urlsafe_b64encode(b"not a user id here").decode())


def test_shannon_entropy() -> None:
    assert ck.shannon_entropy("") == 0.0
    assert ck.shannon_entropy("aaaa") == 0.0
    assert ck.shannon_entropy("abab") == pytest.approx(1.0)
    assert ck.shannon_entropy("0123456789abcdef") == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("sizes", "ok"),
    [([16], True), ([4, 4, 4, 4], True), ([4, 6, 5], True), ([4, 6, 4], True), ([4, 4, 4, 4, 3], True),
     ([4, 4, 4, 2], True), ([12], False), ([20], False), ([4, 4, 4], False), ([2, 4, 4, 4, 2], False),
     ([1] * 16, False)],
)  # fmt: skip
def test_card_groupings(sizes: list[int], ok: bool) -> None:
    assert ck.card_grouping_ok(["1" * n for n in sizes]) is ok


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("+44 20 7946 0958", "e164"),
        ("+14155552671", "e164"),
        ("001-518-640-0854", "e164"),
        ("(415) 555-2671", "nanp"),
        ("415.555.2671", "nanp"),
        ("1-800-555-0199", "nanp"),
        ("020 7946 0958", "national"),
        ("06.18.29.44.71", "national"),
        ("699 956 915", "grouped"),
        ("4155552671", "bare"),
        ("2023-01-15", None),  # a date
        ("15.01.2023", None),
        ("3.14159265", None),  # a decimal
        ("+1234567890", None),  # a typed sequence
        ("555 5555", None),
        ("0.000001256", None),
        ("1 2 3 4 5 6 7", None),
        ("12345678901234567890", None),
    ],
)
def test_phone_shapes(value: str, kind: str | None) -> None:
    assert ck.phone_shape(value) == kind


def test_digit_sequences() -> None:
    assert ck.digit_sequence("9912345678", 7)
    assert ck.digit_sequence("98765432", 6)
    assert not ck.digit_sequence("4111111111111111", 6)
    assert not ck.digit_sequence("135792468", 3)


@pytest.mark.parametrize(
    ("text", "shape"),
    [("03/05/1990", "numeric"), ("25.12.90", "numeric"), ("1990-03-05", "numeric"), ("March 5, 1990", "textual"),
     ("5th of MARCH 1990", "textual"), ("Dec. 25 1990", "textual")],
)  # fmt: skip
def test_find_date_accepts_real_dates(text: str, shape: str) -> None:
    assert ck.find_date("on " + text + " then", 0, 40) == (3, 3 + len(text), shape)


@pytest.mark.parametrize("text", ["13/13/1990", "1990-13-45", "March 45, 1990", "05/1990", "123/05/1990", "March 1990"])
def test_find_date_rejects_impossible_or_partial_dates(text: str) -> None:
    assert ck.find_date(text, 0, len(text)) is None


def test_lower_same_length_keeps_offsets() -> None:
    text = "İstanbul PASSWORD"  # 'İ'.lower() is two characters long
    low = ck.lower_same_length(text)
    assert len(low) == len(text)
    assert low.index("password") == text.index("PASSWORD")


# --- pattern safety -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["1", "1 ", "1/", "12/1", "a", "mar ", "1st of ", "-", "0x", "1.2."])
def test_module_patterns_are_linear_on_adversarial_input(unit: str) -> None:
    text = (unit * (100_000 // len(unit) + 1))[:100_000]
    for name, pattern in vars(ck).items():
        if hasattr(pattern, "finditer") and hasattr(pattern, "pattern"):
            t0 = time.perf_counter()
            for _ in pattern.finditer(text):
                pass
            assert time.perf_counter() - t0 < 1.0, name
