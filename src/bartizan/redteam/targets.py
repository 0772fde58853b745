"""What a red-team run attacks: an OpenAI-compatible endpoint, or the bartizan firewall itself.

Every target answers `send(probe)` with a `TargetReply` whose `status` is ``ok`` (an answer to judge), ``blocked``
(a guard refused the probe: a bartizan gateway's HTTP 400 ``content_blocked`` or a firewall BLOCK) or ``error``
(unreachable, timeout, 5xx after retries, a malformed answer). Errors are reported, never raised, so that one bad
probe cannot end a run and an error can never be mistaken for a refusal or a success.

`EndpointTarget` posts to ``{base_url}/chat/completions`` with aiohttp, retries 429 and 5xx answers and transport
failures with exponential backoff (honouring ``Retry-After``), and plays multi-turn probes one user turn at a time,
appending the model's own answers, so that the last answer is the one judged. `FirewallTarget` scans each
system/user/tool message with `Firewall.scan` under its role, with no network at all.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import aiohttp

from bartizan.redteam.attempts import Probe
from bartizan.redteam.offline import OfflineGuard, OfflineViolation

_SNIPPET = 200  # characters of an error body kept in a reply's error message


@dataclass(frozen=True)
class TargetReply:
    """A target's answer to one probe.

    `text` is the (final) model answer when `status` is ``ok`` (``""`` for a firewall that let the probe through),
    otherwise None. `attempts` counts HTTP requests made (retries and turns included); `flagged` is set by the
    firewall target when some message was flagged without being blocked; `meta` carries details such as the
    gateway's block record or the firewall's worst verdict and finding ids.
    """

    status: str  # "ok" | "blocked" | "error"
    text: str | None
    error: str | None = None
    http_status: int | None = None
    attempts: int = 1
    latency_ms: float = 0.0
    flagged: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ("ok", "blocked", "error"):
            raise ValueError(f"unknown reply status {self.status!r}")
        if (self.status == "error") != (self.error is not None):
            raise ValueError("status 'error' requires an error message, and only it")


class Target(Protocol):
    """Anything a run can send probes to."""

    @property
    def name(self) -> str: ...

    async def send(self, probe: Probe) -> TargetReply: ...


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delay in seconds or an HTTP date) into seconds; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class _Try:
    """The outcome of one HTTP exchange; `retry` says whether it may be worth repeating."""

    status: str
    text: str | None = None
    error: str | None = None
    http_status: int | None = None
    retry: bool = False
    wait_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class EndpointTarget:
    """An OpenAI-compatible chat-completions endpoint (a model, or a model behind a bartizan gateway).

    Use it as ``async with EndpointTarget(...) as target:`` or call `aclose()` when done; the aiohttp session is
    created on first use inside the running event loop. Pass `guard` (an `OfflineGuard`) to refuse, at name
    resolution, any host the guard does not allow. `max_wait_s` caps a server-requested ``Retry-After``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        max_wait_s: float = 60.0,
        guard: OfflineGuard | None = None,
    ) -> None:
        if retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("retries and backoff_s must be >= 0 and timeout_s > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.extra_body = dict(extra_body or {})
        self.max_wait_s = max_wait_s
        self.guard = guard
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return f"endpoint:{self.model}@{self.base_url}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    async def __aenter__(self) -> EndpointTarget:
        self._get_session()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session (safe to call twice)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = self.guard.connector() if self.guard is not None else aiohttp.TCPConnector()
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def send(self, probe: Probe) -> TargetReply:
        """Send `probe`; multi-turn probes go one user turn at a time with the model's answers appended."""
        start = time.perf_counter()
        conversation: list[dict[str, str]] = []
        segments = _segments(probe.messages)
        total = 0
        answer: str | None = None
        for turn, segment in enumerate(segments):
            conversation.extend(segment)
            result, tries = await self._complete(conversation)
            total += tries
            if result.status != "ok":
                meta = dict(result.meta)
                if len(segments) > 1:
                    meta["turn"] = turn
                return TargetReply(
                    result.status,
                    None,
                    result.error,
                    result.http_status,
                    total,
                    (time.perf_counter() - start) * 1000.0,
                    meta=meta,
                )
            answer = result.text or ""
            conversation.append({"role": "assistant", "content": answer})
        meta = {"turns": len(segments)} if len(segments) > 1 else {}
        return TargetReply("ok", answer, None, 200, total, (time.perf_counter() - start) * 1000.0, meta=meta)

    async def _complete(self, messages: list[dict[str, str]]) -> tuple[_Try, int]:
        """One chat completion with retries; returns the last outcome and the number of requests made."""
        body = {**self.extra_body, "model": self.model, "messages": list(messages)}
        tries = 0
        while True:
            tries += 1
            result = await self._post(body)
            if not result.retry or tries > self.retries:
                if result.retry:  # retries exhausted: report as an error, naming how often it was tried
                    result.status = "error"
                    result.error = f"{result.error} (after {tries} attempts)"
                return result, tries
            wait = result.wait_s if result.wait_s is not None else self.backoff_s * (2 ** (tries - 1))
            await asyncio.sleep(min(wait, self.max_wait_s))

    async def _post(self, body: dict[str, Any]) -> _Try:
        session = self._get_session()
        try:
            async with session.post(self.url, json=body) as resp:
                raw = await resp.read()
                return _interpret(resp.status, raw, resp.headers.get("Retry-After"))
        except OfflineViolation:
            raise  # a refused host is a configuration error: stop the run, do not retry
        except TimeoutError:
            return _Try("error", error=f"timeout after {self.timeout_s:g} s", retry=True)
        except aiohttp.ClientConnectionError as exc:
            return _Try("error", error=f"connection failed: {exc}", retry=True)
        except aiohttp.ClientError as exc:
            return _Try("error", error=f"HTTP client error: {type(exc).__name__}: {exc}")


def _segments(messages: tuple[dict[str, str], ...]) -> list[list[dict[str, str]]]:
    """Split scripted messages into requests: each ends at a user message; trailing non-user messages join the last."""
    out: list[list[dict[str, str]]] = []
    current: list[dict[str, str]] = []
    for m in messages:
        current.append(dict(m))
        if m.get("role") == "user":
            out.append(current)
            current = []
    if current:
        if out:
            out[-1].extend(current)
        else:
            out.append(current)
    return out


def _interpret(status: int, raw: bytes, retry_after: str | None) -> _Try:
    """Map an HTTP status and body onto a reply outcome."""
    snippet = raw[:_SNIPPET].decode("utf-8", "replace")
    if status == 429 or status >= 500:
        return _Try(
            "error",
            error=f"HTTP {status}: {snippet}",
            http_status=status,
            retry=True,
            wait_s=retry_after_s(retry_after),
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if 400 <= status < 500:
        err = data.get("error") if isinstance(data, dict) else None
        if status == 400 and isinstance(err, dict) and err.get("code") == "content_blocked":
            detail = err.get("bartizan")
            meta = {"block": detail} if isinstance(detail, dict) else {}
            return _Try("blocked", http_status=status, meta=meta)
        return _Try("error", error=f"HTTP {status}: {snippet}", http_status=status)
    if status != 200:
        return _Try("error", error=f"unexpected HTTP {status}: {snippet}", http_status=status)
    text = _answer_text(data)
    if text is None:
        return _Try("error", error=f"malformed completion: {snippet}", http_status=status)
    return _Try("ok", text=text, http_status=status)


def _answer_text(data: Any) -> str | None:
    """The first choice's message content (or its ``refusal`` text); None when the body is not a completion."""
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        return refusal
    if content is None and message.get("tool_calls"):
        return ""  # answered with a tool call only: an answer with no text, for the judge to read as such
    return None


class Scanner(Protocol):
    """The part of `bartizan.pipeline.Firewall` that `FirewallTarget` uses."""

    def scan(self, message: Any, role: Any = ...) -> Any: ...


_SCANNED_ROLES = ("system", "user", "tool")
_SEVERITY = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


class FirewallTarget:
    """The bartizan firewall as a target: each system/user/tool message is scanned under its own role.

    ``blocked`` when any message's verdict is BLOCK; otherwise ``ok`` with empty text and `flagged` true when any
    message was FLAGged (or REDACTed). `meta` holds the worst verdict and the finding ids. Scans run in a worker
    thread so that a concurrent run keeps its event loop responsive.
    """

    def __init__(self, firewall: Scanner, *, name: str = "firewall") -> None:
        self.firewall = firewall
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def send(self, probe: Probe) -> TargetReply:
        start = time.perf_counter()
        worst = "allow"
        findings: set[str] = set()
        for m in probe.messages:
            role = m.get("role", "user")
            if role not in _SCANNED_ROLES:
                continue
            try:
                result = await asyncio.to_thread(self.firewall.scan, m.get("content", ""), role)
            except Exception as exc:  # a scan crash is an error, never an allow
                return TargetReply("error", None, f"firewall scan failed: {type(exc).__name__}: {exc}")
            verdict = str(getattr(result.verdict, "value", result.verdict))
            if _SEVERITY.get(verdict, 3) > _SEVERITY[worst]:
                worst = verdict if verdict in _SEVERITY else "block"
            for f in result.findings:
                findings.add(f"{f.detector}:{f.rule_id or f.category}")
        latency = (time.perf_counter() - start) * 1000.0
        meta = {"verdict": worst, "findings": sorted(findings)}
        if worst == "block":
            return TargetReply("blocked", None, latency_ms=latency, meta=meta)
        return TargetReply("ok", "", latency_ms=latency, flagged=worst != "allow", meta=meta)
