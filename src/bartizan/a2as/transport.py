"""Transport signatures for authenticated prompts (spec §3.3).

Three wire formats, one verifier:

- ``rfc9421`` (default): HTTP Message Signatures (RFC 9421) over ``@method``, ``@path`` and ``content-digest``
  (RFC 9530), with ``created``/``expires``/``keyid``/``alg`` parameters, HMAC-SHA256 or Ed25519, and a replay cache.
- ``simple`` [higress]: ``Signature: lowerhex(HMAC-SHA256(secret, body))``. Body only: no freshness, no replay
  protection (an identical body always carries the same signature, so a cache would refuse honest repeats).
- ``paper``: ``X-User-ID``, ``X-Timestamp`` (unix seconds) and ``X-Signature`` (64 hex). The paper does not say
  what is signed; [ours]: ``HMAC-SHA256(secret, user_id LF timestamp LF body)``, with freshness and replay checks.

Checks run in the spec's order (digest, signature, skew, age, expiry, replay) after the headers have been
found, size-checked and strictly parsed; every failure has its own ``reason`` (see `REASONS`) and one event.
Fixes to the spec's text: ``clock_skew_s`` bounds ``created`` in the future, ``max_age_s`` bounds it in the past
(checking ``±skew`` first would make any ``max_age_s`` above the skew unreachable); the replay entry is kept
until the request could no longer verify (``created + max_age_s`` or ``expires``), not ``max_age_s`` after it was
seen; the replay key uses the decoded signature bytes, so re-encoding the base64 or renaming the label does not
make a new key; the algorithm comes from the key, never from the header (``alg`` may only confirm it), which
rules out HMAC-with-the-public-key confusion. Reasons and events never contain secrets or header contents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bartizan.a2as.events import SIG_INVALID, SIG_REPLAY, A2ASEvent
from bartizan.a2as.keyring import KeyMaterial, Keyring, KeyringError, alg_of
from bartizan.a2as.keyring import SignatureFailure as _Fail
from bartizan.a2as.replay import ReplayCache
from bartizan.a2as.sfv import BareItem, Item, SFError, parse_dictionary, serialize_inner_list

__all__ = [
    "REASONS", "AuthResult", "Keyring", "KeyringError", "ReplayCache", "content_digest", "sign_paper",
    "sign_rfc9421", "sign_simple", "signature_base", "verify_request",
]  # fmt: skip
Mode = Literal["rfc9421", "simple", "paper"]
REASONS = (
    "missing_header", "header_too_large", "malformed_header", "missing_param", "unsupported_component",
    "insufficient_coverage", "unknown_kid", "key_retired", "alg_mismatch", "unsupported_digest",
    "digest_mismatch", "bad_signature", "clock_skew", "too_old", "expired", "replay", "replay_cache_full",
)  # fmt: skip
DEFAULT_REQUIRED_COMPONENTS = ("@method", "@path", "content-digest")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_FIELD_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SF_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_DIGITS = re.compile(r"[0-9]{1,15}")
_VISIBLE = re.compile(r"[\x20-\x7e]*")


def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` field value for ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _sign_bytes(key: bytes | Ed25519PrivateKey, data: bytes) -> bytes:
    if isinstance(key, bytes):
        return hmac.digest(key, data, "sha256")
    return key.sign(data)


def _verify_bytes(key: KeyMaterial, data: bytes, signature: bytes) -> bool:
    if isinstance(key, bytes):
        return hmac.compare_digest(hmac.digest(key, data, "sha256"), signature)
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _split_target(path: str) -> tuple[str, str | None]:
    p, sep, q = path.partition("?")
    return (p or "/"), (q if sep else None)


def _component_value(name: str, method: str, path: str, get_header: Callable[[str], str | None]) -> str:
    """The RFC 9421 §2 value of one covered component; raises ``_Fail`` when it cannot be built."""
    if name == "@method":
        if not _METHOD.fullmatch(method):
            raise _Fail("malformed_header")
        return method
    if name in ("@path", "@query"):
        p, q = _split_target(path)
        value = p if name == "@path" else "?" + (q or "")
        if not value.isascii() or any(c in value for c in " \t\r\n"):
            raise _Fail("malformed_header")
        return value
    if name.startswith("@") or not _FIELD_NAME.fullmatch(name) or name in ("signature", "signature-input"):
        raise _Fail("unsupported_component")
    raw = get_header(name)
    if raw is None:
        raise _Fail("missing_header")
    value = raw.strip(" \t")
    if not _VISIBLE.fullmatch(value):
        raise _Fail("malformed_header")
    return value


def signature_base(names: Sequence[str], params_value: str, resolve: Callable[[str], str]) -> bytes:
    """RFC 9421 §2.5 signature base: one ``"name": value`` line per component, then ``@signature-params``."""
    lines = [f'"{name}": {resolve(name)}' for name in names]
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines).encode("ascii")


def sign_rfc9421(
    method: str,
    path: str,
    body: bytes,
    keyring: Keyring,
    *,
    created: int | None = None,
    expires_in: int | None = 300,
    covered_extra: Mapping[str, str] | None = None,
    label: str = "sig1",
) -> dict[str, str]:
    """Headers to add to a request: ``Content-Digest``, ``Signature-Input``, ``Signature`` (and ``covered_extra``).

    Covers ``@method``, ``@path`` (``@query`` too when ``path`` has one), ``content-digest`` and each extra
    header, signed with ``keyring.current``. Raises `ValueError` for values a signature base cannot carry.
    """
    key = keyring.signing_key()
    created_s = int(time.time()) if created is None else int(created)
    headers = {"content-digest": content_digest(body)}
    names = ["@method", "@path", *(["@query"] if "?" in path else []), "content-digest"]
    for name, value in (covered_extra or {}).items():
        lname = name.lower()
        if not _FIELD_NAME.fullmatch(lname) or lname in headers or lname in ("signature", "signature-input"):
            raise ValueError(f"cannot cover header {name!r}")
        headers[lname] = value
        names.append(lname)
    params: dict[str, BareItem] = {"created": created_s}
    if expires_in is not None:
        params["expires"] = created_s + expires_in
    params.update(keyid=keyring.current, alg=alg_of(key))
    items: list[Item] = [(n, {}) for n in names]
    try:
        params_value = serialize_inner_list(items, params)
        base = signature_base(names, params_value, lambda n: _component_value(n, method, path, headers.get))
        if not _SF_KEY.fullmatch(label):
            raise SFError("bad label")
    except (_Fail, SFError, UnicodeEncodeError) as exc:
        raise ValueError(f"cannot sign: {getattr(exc, 'reason', 'invalid label or value')}") from None
    sig = base64.b64encode(_sign_bytes(key, base)).decode("ascii")
    out = {"Content-Digest": headers["content-digest"], "Signature-Input": f"{label}={params_value}"}
    out["Signature"] = f"{label}=:{sig}:"
    out.update(covered_extra or {})
    return out


def sign_simple(body: bytes, secret: bytes) -> dict[str, str]:
    """[higress] simple mode: ``{"Signature": lowerhex(HMAC-SHA256(secret, body))}``."""
    return {"Signature": hmac.digest(secret, body, "sha256").hex()}


def sign_paper(body: bytes, secret: bytes, user_id: str, *, timestamp: int | None = None) -> dict[str, str]:
    """[paper] compat headers: ``X-User-ID``, ``X-Timestamp``, ``X-Signature`` over ``user_id LF ts LF body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.digest(secret, _paper_message(user_id, ts, body), "sha256")
    return {"X-User-ID": user_id, "X-Timestamp": ts, "X-Signature": mac.hex()}


def _paper_message(user_id: str, ts: str, body: bytes) -> bytes:
    return user_id.encode("utf-8") + b"\n" + ts.encode("ascii") + b"\n" + body


@dataclass
class AuthResult:
    """Outcome of `verify_request`: ``reason`` is one of `REASONS` when ``ok`` is false; ``kid`` only if known."""

    ok: bool
    mode: str
    kid: str | None
    reason: str | None
    events: list[A2ASEvent] = field(default_factory=list)


def _fold_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names; repeated field lines are combined with ", " as HTTP does (RFC 9110 §5.3)."""
    out: dict[str, str] = {}
    multi = getattr(headers, "multi_items", None)
    items: Iterable[tuple[str, str]] = multi() if callable(multi) else headers.items()
    for name, value in items:
        key, value = name.lower(), value.strip(" \t")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    keyring: Keyring,
    *,
    mode: Mode = "rfc9421",
    clock_skew_s: int = 300,
    max_age_s: int = 300,
    replay: ReplayCache | None = None,
    now: float | None = None,
    max_header_bytes: int = 8192,
    required_components: Sequence[str] = DEFAULT_REQUIRED_COMPONENTS,
    label: str | None = None,
) -> AuthResult:
    """Verify a request's transport signature; never raises for anything a client sent.

    ``path`` is the request target's path with its query, if any. ``headers`` may be any mapping (a Starlette
    ``Headers`` included: repeated lines are combined). ``label`` picks one RFC 9421 signature; by default the
    first one in ``Signature-Input`` that ``Signature`` also carries.
    """
    t = time.time() if now is None else now
    hdrs = _fold_headers(headers)
    state: dict[str, str | None] = {"kid": None, "alg": None}
    try:
        if mode == "rfc9421":
            _verify_rfc9421(method, path, hdrs, body, keyring, t, clock_skew_s, max_age_s, replay,
                            max_header_bytes, required_components, label, state)  # fmt: skip
        elif mode == "simple":
            _verify_simple(hdrs, body, keyring, t, max_header_bytes, state)
        elif mode == "paper":
            _verify_paper(hdrs, body, keyring, t, clock_skew_s, max_age_s, replay, max_header_bytes, state)
        else:
            raise ValueError(f"unknown signature mode {mode!r}")
    except _Fail as fail:
        name = SIG_REPLAY if fail.reason == "replay" else SIG_INVALID
        detail = {"mode": mode, "kid": state["kid"], "alg": state["alg"]}
        event = A2ASEvent(name, "deny", reason=fail.reason, detail=detail)
        return AuthResult(False, mode, state["kid"], fail.reason, [event])
    return AuthResult(True, mode, state["kid"], None, [])


def _header(hdrs: Mapping[str, str], name: str, max_bytes: int) -> str:
    value = hdrs.get(name)
    if value is None:
        raise _Fail("missing_header")
    if len(value.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _Fail("header_too_large")
    return value


def _check_time(created: int, expires: int | None, t: float, skew: int, max_age: int) -> None:
    if created > t + skew:
        raise _Fail("clock_skew")
    if t - created > max_age:
        raise _Fail("too_old")
    if expires is not None and t > expires:
        raise _Fail("expired")


def _check_replay(replay: ReplayCache | None, key: tuple[object, ...], t: float, until: float) -> None:
    if replay is not None:
        status = replay.check(key, now=t, until=until)
        if status != "new":
            raise _Fail("replay" if status == "replay" else "replay_cache_full")


def _digest_matches(value: str, body: bytes) -> bool:
    members = parse_dictionary(value)
    checked = False
    for alg, fn in (("sha-256", hashlib.sha256), ("sha-512", hashlib.sha512)):
        member = members.get(alg)
        if member is None:
            continue
        if isinstance(member[0], list) or not isinstance(member[0], bytes):
            raise SFError("digest is not a byte sequence")
        if not hmac.compare_digest(member[0], fn(body).digest()):
            return False
        checked = True
    if not checked:
        raise _Fail("unsupported_digest")
    return True


def _verify_rfc9421(
    method: str,
    path: str,
    hdrs: dict[str, str],
    body: bytes,
    keyring: Keyring,
    t: float,
    skew: int,
    max_age: int,
    replay: ReplayCache | None,
    max_bytes: int,
    required: Sequence[str],
    label: str | None,
    state: dict[str, str | None],
) -> None:
    sig_input = _header(hdrs, "signature-input", max_bytes)
    sig_field = _header(hdrs, "signature", max_bytes)
    digest_field = hdrs.get("content-digest")
    if digest_field is not None:
        _header(hdrs, "content-digest", max_bytes)
    try:
        inputs = parse_dictionary(sig_input)
        sigs = parse_dictionary(sig_field)
    except SFError:
        raise _Fail("malformed_header") from None
    if label is None:
        label = next((name for name in inputs if name in sigs), None)
        if label is None:
            raise _Fail("malformed_header" if inputs and sigs else "missing_header")
    elif label not in inputs or label not in sigs:
        raise _Fail("missing_header")
    member, sig_member = inputs[label], sigs[label]
    if not isinstance(member[0], list) or isinstance(sig_member[0], list) or not isinstance(sig_member[0], bytes):
        raise _Fail("malformed_header")
    items, params = member[0], member[1]
    names: list[str] = []
    for value, item_params in items:
        if type(value) is not str or value in names:
            raise _Fail("malformed_header")
        if item_params:
            raise _Fail("unsupported_component")
        names.append(value)
    for pname in ("created", "expires"):
        if pname in params and (type(params[pname]) is not int or int(params[pname]) < 0):
            raise _Fail("malformed_header")
    for pname in ("keyid", "alg", "nonce", "tag"):
        if pname in params and type(params[pname]) is not str:
            raise _Fail("malformed_header")
    if "created" not in params:
        raise _Fail("missing_param")
    if any(name not in names for name in required):
        raise _Fail("insufficient_coverage")
    kid = str(params.get("keyid", keyring.current))  # no keyid (higress clients): the current key
    if kid in keyring.keys:
        state["kid"] = kid  # a configured key id may be reported; an unknown one is client text and is not
    key = keyring.verification_key(kid, t)
    state["kid"], state["alg"] = kid, alg_of(key)
    if "alg" in params and params["alg"] != state["alg"]:
        raise _Fail("alg_mismatch")
    if "content-digest" in names or digest_field is not None:
        if digest_field is None:
            raise _Fail("missing_header")
        try:
            if not _digest_matches(digest_field, body):
                raise _Fail("digest_mismatch")
        except SFError:
            raise _Fail("malformed_header") from None
    resolve = _sized_resolver(method, path, hdrs, max_bytes)
    try:
        base = signature_base(names, serialize_inner_list(items, params), resolve)
    except (SFError, UnicodeEncodeError):
        raise _Fail("malformed_header") from None
    signature = sig_member[0]
    if not _verify_bytes(key, base, signature):
        raise _Fail("bad_signature")
    created = int(params["created"])
    expires = int(params["expires"]) if "expires" in params else None
    _check_time(created, expires, t, skew, max_age)
    until = float(created + max_age) if expires is None else float(min(created + max_age, expires))
    _check_replay(replay, ("rfc9421", kid, created, signature), t, until)


def _sized_resolver(method: str, path: str, hdrs: Mapping[str, str], max_bytes: int) -> Callable[[str], str]:
    def get(name: str) -> str | None:
        return _header(hdrs, name, max_bytes) if name in hdrs else None

    return lambda name: _component_value(name, method, path, get)


def _match_hmac(keyring: Keyring, t: float, message: bytes, signature: bytes, state: dict[str, str | None]) -> str:
    keys = keyring.active_hmac_keys(t)
    if not keys:
        raise _Fail("unknown_kid")
    for kid, secret in keys:
        if hmac.compare_digest(hmac.digest(secret, message, "sha256"), signature):
            state["kid"], state["alg"] = kid, "hmac-sha256"
            return kid
    raise _Fail("bad_signature")


def _verify_simple(
    hdrs: Mapping[str, str], body: bytes, keyring: Keyring, t: float, max_bytes: int, state: dict[str, str | None]
) -> None:
    value = _header(hdrs, "signature", max_bytes).strip()
    if not _HEX64.fullmatch(value):
        raise _Fail("malformed_header")
    _match_hmac(keyring, t, body, bytes.fromhex(value), state)


def _verify_paper(
    hdrs: Mapping[str, str],
    body: bytes,
    keyring: Keyring,
    t: float,
    skew: int,
    max_age: int,
    replay: ReplayCache | None,
    max_bytes: int,
    state: dict[str, str | None],
) -> None:
    user_id = _header(hdrs, "x-user-id", max_bytes)
    ts = _header(hdrs, "x-timestamp", max_bytes).strip()
    sig = _header(hdrs, "x-signature", max_bytes).strip()
    if not _DIGITS.fullmatch(ts) or not _HEX64.fullmatch(sig) or not _VISIBLE.fullmatch(user_id):
        raise _Fail("malformed_header")
    signature = bytes.fromhex(sig)
    kid = _match_hmac(keyring, t, _paper_message(user_id, ts, body), signature, state)
    created = int(ts)
    _check_time(created, None, t, skew, max_age)
    _check_replay(replay, ("paper", kid, created, signature), t, float(created + max_age))
