"""`bartizan cert keygen|sign|verify|lint`, driven through the command's own argparse wiring."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bartizan.cli import cert_cmd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "a2as"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="bartizan")
    cert_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cert", *argv])
    code: int = args.run(args)
    return code


@pytest.fixture
def keydir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert run("keygen", "--out", str(tmp_path / "keys")) == 0
    out = capsys.readouterr().out
    assert "trusted issuer pin: ed25519:" in out
    priv = tmp_path / "keys" / "a2as-cert-signing.key"
    secret = "".join(priv.read_text().splitlines()[1:-1])
    assert secret not in out  # key material is never printed
    return tmp_path / "keys"


def test_keygen_sign_verify_round_trip(tmp_path: Path, keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = tmp_path / "signed.yaml"
    assert (
        run(
            "sign",
            str(EXAMPLES / "cert-native.yaml"),
            "--key",
            str(keydir / "a2as-cert-signing.key"),
            "--out",
            str(signed),
        )
        == 0
    )
    assert "signed native certificate" in capsys.readouterr().out
    assert run("verify", str(signed), "--issuer", str(keydir / "a2as-cert-signing.pub")) == 0
    assert ": verified:" in capsys.readouterr().out
    pin = (keydir / "a2as-cert-signing.pub").read_text().strip()
    assert run("verify", str(signed), "--issuer", pin) == 0  # a literal pin works too


def test_verify_failures_exit_4_with_status(tmp_path: Path, keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = tmp_path / "signed.yaml"
    run(
        "sign", str(EXAMPLES / "cert-native.yaml"), "--key", str(keydir / "a2as-cert-signing.key"), "--out", str(signed)
    )
    capsys.readouterr()
    assert run("verify", str(signed), "--issuer", str(EXAMPLES / "cert-native.issuer.pub")) == 4
    assert ": untrusted:" in capsys.readouterr().err

    signed.write_text(signed.read_text().replace("tickets.read", "tickets.delete"))
    assert run("verify", str(signed), "--issuer", str(keydir / "a2as-cert-signing.pub")) == 4
    assert ": invalid: digest_mismatch" in capsys.readouterr().err

    assert run("verify", str(EXAMPLES / "cert-native.yaml"), "--issuer", str(keydir / "a2as-cert-signing.pub")) == 4
    assert ": unsigned:" in capsys.readouterr().err


def test_verify_checked_in_example() -> None:
    signed, pub = EXAMPLES / "cert-native.signed.yaml", EXAMPLES / "cert-native.issuer.pub"
    assert run("verify", str(signed), "--issuer", str(pub)) == 0


def test_input_errors_exit_3(tmp_path: Path, keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("keygen", "--out", str(keydir)) == 3
    assert "refusing to overwrite" in capsys.readouterr().err
    assert run("verify", str(tmp_path / "missing.yaml"), "--issuer", str(keydir / "a2as-cert-signing.pub")) == 3
    assert run("verify", str(EXAMPLES / "cert-native.yaml"), "--issuer", "ed25519:short") == 3
    assert run("lint", str(tmp_path / "missing.yaml")) == 3
    assert (
        run("sign", str(EXAMPLES / "cert-native.yaml"), "--key", str(tmp_path / "nokey"), "--out", str(tmp_path / "o"))
        == 3
    )


def test_lint_ok_and_problems(tmp_path: Path, keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("cert-a2as.yaml", "cert-paper.json", "cert-native.yaml", "cert-native.signed.yaml"):
        assert run("lint", str(EXAMPLES / name)) == 0
    assert ": ok — " in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("permissions:\n  tools:\n    allow: [a, 3]\n    denny: [b]\n  models: [m]\n  models: [n]\n")
    assert run("lint", str(bad)) == 4
    assert f"{bad}:6: " in capsys.readouterr().out  # duplicate key, found while reading
    bad.write_text("permissions:\n  tools:\n    allow: [a, 3]\n    denny: [b]\n")
    assert run("lint", str(bad)) == 4
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{bad}:3: permissions.tools.allow[1]: Input should be a valid string",
        f"{bad}:4: permissions.tools.denny: unknown key",
    ]
    assert run("sign", str(bad), "--key", str(keydir / "a2as-cert-signing.key"), "--out", str(tmp_path / "o.yaml")) == 4
    assert not (tmp_path / "o.yaml").exists()


def test_usage_requires_issuer() -> None:
    with pytest.raises(SystemExit) as exc:
        run("verify", "x.yaml")
    assert exc.value.code == 2
