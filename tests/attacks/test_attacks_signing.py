"""Ed25519 signing: key files, canonical encoding, and every way a record can fail to verify."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bartizan.attacks.signing import (
    Keyring,
    SigningError,
    canonical_json,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    parse_public_key,
    sign_record,
)


def test_keygen_writes_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    priv, pub, kid = generate_keypair(tmp_path)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub.read_text().startswith("ed25519:")
    assert key_id(load_public_key(pub)) == kid == key_id(load_private_key(priv).public_key())
    with pytest.raises(SigningError, match="refusing"):
        generate_keypair(tmp_path)


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    priv, _, _ = generate_keypair(tmp_path)
    os.chmod(priv, 0o644)
    with pytest.raises(SigningError, match="readable by others"):
        load_private_key(priv)


def test_canonical_encoding_ignores_key_order_and_signature() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == canonical_json({"a": "é", "b": 1, "sig": "x"})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'.encode()


def test_sign_and_verify_round_trip(tmp_path: Path) -> None:
    priv, pub, _ = generate_keypair(tmp_path)
    rec = sign_record({"id": "ka_0", "category": "jailbreak"}, load_private_key(priv))
    assert Keyring([load_public_key(pub)]).verify(rec) is None
    assert Keyring([load_public_key(pub)]).verify(dict(reversed(list(rec.items())))) is None


def test_tampered_unsigned_and_unpinned_records_are_rejected(tmp_path: Path) -> None:
    priv, pub, _ = generate_keypair(tmp_path / "a")
    other, _, _ = generate_keypair(tmp_path / "b")
    ring = Keyring([load_public_key(pub)])
    rec = sign_record({"id": "ka_0", "category": "jailbreak", "embedding": "AAAA"}, load_private_key(priv))
    assert "bad signature" in (ring.verify({**rec, "category": "other"}) or "")
    assert "bad signature" in (ring.verify({**rec, "embedding": "AAAB"}) or "")
    assert "bad signature" in (ring.verify({**rec, "extra": 1}) or "")
    assert ring.verify({k: v for k, v in rec.items() if k != "sig"}) == "unsigned"
    assert "bad signature" in (ring.verify({**rec, "sig": "not base64!"}) or "")
    foreign = sign_record({"id": "ka_0"}, load_private_key(other))
    assert "not pinned" in (ring.verify(foreign) or "")
    # a forger who copies a trusted key id onto a record signed with another key gains nothing
    assert "bad signature" in (ring.verify({**foreign, "key_id": rec["key_id"]}) or "")


def test_parse_public_key_rejects_garbage() -> None:
    with pytest.raises(SigningError):
        parse_public_key("ed25519:AAAA")
    with pytest.raises(SigningError):
        parse_public_key("ssh-ed25519 AAAA")
