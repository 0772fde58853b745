"""Risky links: images that exfiltrate data when rendered, IP and punycode hosts, look-alike domains, data: URIs.

A markdown image (or ``<img>``) pointing at an outside host is fetched by the chat client as soon as the
answer is shown, so whatever the URL carries leaves without a click: that is the exfiltration channel this
detector watches (query strings, long path segments, data in subdomains, series of images to one host).
Only an answer is rendered: in input (user, tool, retrieved, agent) an image URL that already holds data
is reported below the default threshold, since an attacker who writes the page cannot know the data yet;
a URL *template* ("…?q={secret}") counts in every role. Public image services whose logs an attacker cannot
read are trusted (`trust_image_hosts`). Hosts are judged in `url_hosts`. Evidence names the rule and sizes,
never the URL, which may carry the very data being leaked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pydantic import Field

from bartizan import taxonomy as tx
from bartizan.detectors.base import DetectorConfig, ScanContext
from bartizan.detectors.registry import detector
from bartizan.detectors.url_hosts import IP_HOST, LOOKALIKE, PUNYCODE, Signal, host_signals, known_image_host
from bartizan.types import Finding, Role, Span

NAME = "urls"
EXFIL, DATA_URI = "markdown_exfiltration", "data_uri"

_URL = re.compile(
    r"\b(?:https?|ftps?|wss?)://(?:\[[0-9A-Za-z:.%]{2,64}\])?[^\s<>\"'`\[\]{}|\\^]{0,4096}", re.IGNORECASE
)
_MD_IMAGE = re.compile(r"!\[[^\[\]\n]{0,1000}\]\([ \t]{0,10}<?([^\s)>]{1,4096})")
_MD_REF_IMAGE = re.compile(r"!\[([^\[\]\n]{0,1000})\]\[([^\[\]\n]{0,200})\]")
_MD_DEFINITION = re.compile(r"^[ \t]{0,3}\[([^\[\]\n]{1,200})\]:[ \t]*<?([^\s>]{1,4096})", re.MULTILINE)
_IMG_TAG = re.compile(r"""<img\b[^<>]{0,2000}?\bsrc\s*=\s*["']?([^"'\s<>]{1,4096})""", re.IGNORECASE)
_DATA_URI = re.compile(
    r"(?<![A-Za-z0-9+.-])data:([a-z]{1,20}/[a-z0-9.+-]{1,80})?((?:;[a-z0-9.+-]{1,40}(?:=[^;,\s]{0,80})?){0,6}),",
    re.IGNORECASE,
)
_DATA_BODY = re.compile(r"[^\s\"'<>)\]]{0,1000000}")
_BASE64ISH = re.compile(r"[A-Za-z0-9+/_=-]{24,}")
_URL_PARTS = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]{0,15}):)?//([^/?#]*)([^?#]*)(?:\?([^#]*))?")
_TRAILING = ".,;:!?*'\")"
_PLACEHOLDER = frozenset("{}<>$[]")

_ACTIVE_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript",
    "application/x-javascript", "text/ecmascript", "application/ecmascript", "text/xml", "application/xml",
})  # fmt: skip


class UrlsConfig(DetectorConfig):
    allowed_hosts: tuple[str, ...] = Field(default=(), description="host globs never flagged, e.g. '*.example.com'")
    trust_image_hosts: bool = Field(default=True, description="never flag images from the listed public image hosts")
    max_urls: int = Field(default=500, ge=1, description="links examined per message")


@dataclass(frozen=True, slots=True)
class Url:
    """The parts of a link this detector looks at. `host` is lower case, without port or user info."""

    host: str
    path: str
    query: str
    external: bool  # absolute http(s) or protocol-relative: fetched from somewhere else


def parse_url(url: str) -> Url | None:
    """Split an absolute or protocol-relative URL; None for relative paths."""
    m = _URL_PARTS.match(url)
    if m is None:
        return None
    scheme, authority, path, query = m.groups()
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        host = authority[1:].partition("]")[0]
    else:
        host = authority.partition(":")[0]
    host = host.rstrip(".").lower()
    if not host:
        return None
    return Url(host, path, query or "", scheme is None or scheme.lower() in ("http", "https"))


def _trim(url: str) -> str:
    """Drop sentence punctuation after a link; keep a closing parenthesis that the link itself opened."""
    while url and url[-1] in _TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


# --- exfiltration through rendered images ----------------------------------------------------------
def _is_slug(part: str) -> bool:
    """Words joined by hyphens or underscores, as in a page or file name ("how-to-train-your-dragon")."""
    return (
        part.count("-") + part.count("_") >= 3 and part.replace("-", "").replace("_", "").isalnum() and part.islower()
    )


def _segment_score(stem: str) -> float | None:
    """How much a path segment looks like smuggled data rather than a name, hash or slug."""
    if len(stem) < 24:
        return None
    if _is_slug(stem) or all(c in "0123456789abcdefABCDEF-" for c in stem):  # names, content hashes, UUIDs
        return 0.45 if len(stem) >= 40 else None
    mixed = any(c.isupper() for c in stem) and any(c.islower() for c in stem) and any(c.isdigit() for c in stem)
    if len(stem) >= 40 or (mixed and _BASE64ISH.fullmatch(stem)):
        return 0.8
    return None


def exfil_signal(url: Url, kind: str) -> Signal | None:
    """How much data an image URL could carry out, judged by its query, path and subdomains."""
    where = f"{kind.replace('_', ' ')} to an external host"
    if any(c in _PLACEHOLDER for c in url.path + url.query):
        # "{data}", "$SECRET", "<summary>": a URL template waiting to be filled in, the shape of injected
        # exfiltration instructions.
        return Signal(EXFIL, 0.9, f"{kind}.template", f"{where}, URL has a placeholder for data")
    best: Signal | None = None
    if url.query:
        values = [p.partition("=")[2] if "=" in p else p for p in url.query.split("&")]
        longest = max((len(v) for v in values), default=0)
        carries = longest >= 16 or len(url.query) >= 48
        score = 0.9 if carries else 0.45
        what = "query carries data" if carries else "short query"
        best = Signal(
            EXFIL, score, f"{kind}.query", f"{where}, {what} ({len(values)} params, longest value {longest} chars)"
        )
    for segment in url.path.split("/"):
        stem = segment.rsplit(".", 1)[0] if "." in segment[-6:] else segment
        seg_score = _segment_score(stem)
        if seg_score is not None and (best is None or seg_score > best.score):
            best = Signal(EXFIL, seg_score, f"{kind}.path", f"{where}, path segment of {len(stem)} chars")
    long_labels = [lab for lab in url.host.split(".")[:-2] if len(lab) >= 32 and not _is_slug(lab)]
    if long_labels and (best is None or best.score < 0.8):
        best = Signal(
            EXFIL, 0.8, f"{kind}.subdomain", f"{where}, subdomain label of {max(map(len, long_labels))} chars"
        )
    return best


# --- data: URIs --------------------------------------------------------------------------------------
def data_signal(mediatype: str, params: str, body_len: int) -> Signal:
    mediatype = (mediatype or "text/plain").lower()
    b64 = ";base64" in params.lower()
    size = f"{mediatype}{', base64' if b64 else ''}, {body_len} chars"
    if mediatype in _ACTIVE_TYPES:
        return Signal(DATA_URI, 0.9 if b64 else 0.85, "data_uri.active", f"data: URI with active content ({size})")
    if mediatype.startswith("application/") and not mediatype.endswith("json"):
        return Signal(DATA_URI, 0.6, "data_uri.application", f"data: URI with a file payload ({size})")
    if mediatype.startswith(("image/", "audio/", "video/", "font/")):
        return Signal(DATA_URI, 0.35, "data_uri.media", f"data: URI with inline media ({size})")
    return Signal(DATA_URI, 0.3, "data_uri.text", f"data: URI with inline text ({size})")


_REFS = {
    EXFIL: ((tx.RESPONSE_RENDERING, tx.DATA_LEAKAGE), (tx.LLM05, tx.LLM02)),
    IP_HOST: ((), (tx.LLM05,)),
    PUNYCODE: ((), (tx.LLM05,)),
    LOOKALIKE: ((), (tx.LLM05,)),
    DATA_URI: ((tx.RESPONSE_RENDERING,), (tx.LLM05,)),
}


@detector(
    NAME,
    config=UrlsConfig,
    categories=(EXFIL, IP_HOST, PUNYCODE, LOOKALIKE, DATA_URI),
    description="Risky links: exfiltrating markdown images, IP/punycode/look-alike hosts, data: URIs.",
)
class Urls:
    """Judges every link in a message by where it points and what it carries."""

    def __init__(self, config: UrlsConfig) -> None:
        self.config = config
        self._allowed = tuple(glob.lower() for glob in config.allowed_hosts)

    def allowed(self, host: str) -> bool:
        return any(fnmatchcase(host, glob) for glob in self._allowed)

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        text = ctx.text
        has_link = "://" in text
        has_md = "![" in text
        has_img = "<" in text and "<img" in text.lower()
        has_data = "ata:" in text or "ATA:" in text
        if not (has_link or has_md or has_img or has_data):
            return []
        out: dict[tuple[int, int, str], Finding] = {}
        if has_md or has_img:
            self._images(ctx, text, has_md, has_img, out)
        if has_link:
            seen: dict[str, tuple[Signal, ...]] = {}  # hosts repeat; judge each once per message
            for n, m in enumerate(_URL.finditer(text)):
                if n >= self.config.max_urls:
                    break
                ctx.check_deadline()
                link = _trim(m.group())
                url = parse_url(link)
                if url is None or self.allowed(url.host):
                    continue
                if url.host not in seen:
                    seen[url.host] = tuple(host_signals(url.host))
                for signal in seen[url.host]:
                    self._add(out, signal, m.start(), m.start() + len(link))
        if has_data:
            pos = 0
            while (uri := _DATA_URI.search(text, pos)) is not None:
                body = _DATA_BODY.match(text, uri.end())
                end = body.end() if body else uri.end()
                self._add(out, data_signal(uri.group(1) or "", uri.group(2), end - uri.end()), uri.start(), end)
                pos = end  # the next URI starts after this one's payload (keeps the scan linear)
        return list(out.values())

    def _images(
        self, ctx: ScanContext, text: str, has_md: bool, has_img: bool, out: dict[tuple[int, int, str], Finding]
    ) -> None:
        found: list[tuple[int, int, str, str]] = []  # (start, end, url, kind) of every image source
        if has_md:
            found.extend((m.start(1), m.end(1), m.group(1), "markdown_image") for m in _MD_IMAGE.finditer(text))
            if "]:" in text:
                defs = {m.group(1).strip().lower(): m for m in _MD_DEFINITION.finditer(text)}
                for m in _MD_REF_IMAGE.finditer(text):
                    d = defs.get((m.group(2) or m.group(1)).strip().lower())
                    if d is not None:
                        found.append((d.start(2), d.end(2), d.group(2), "markdown_image"))
        if has_img:
            found.extend((m.start(1), m.end(1), m.group(1), "img_tag") for m in _IMG_TAG.finditer(text))
        by_endpoint: dict[tuple[str, str], list[tuple[int, int, Signal]]] = {}
        for start, end, raw, kind in found[: self.config.max_urls]:
            ctx.check_deadline()
            url = parse_url(raw)
            if url is None or not url.external or self.allowed(url.host):
                continue
            if self.config.trust_image_hosts and known_image_host(url.host):
                continue
            signal = exfil_signal(url, kind)
            if signal is not None:
                by_endpoint.setdefault((url.host, url.path), []).append((start, end, signal))
        rendered = ctx.message.role is Role.ASSISTANT
        for images in by_endpoint.values():
            # Several images to one endpoint, each with a little data, add up to a channel.
            series = len(images) >= 3
            for start, end, signal in images:
                if series and signal.score < 0.9:
                    signal = Signal(
                        EXFIL, 0.9, "image_series", f"{len(images)} images to one external endpoint carry data"
                    )
                if not rendered and not signal.rule.endswith(".template"):
                    signal = Signal(
                        EXFIL, min(signal.score, 0.45), signal.rule, signal.evidence + " (input, not rendered)"
                    )
                self._add(out, signal, start, end)

    def _add(self, out: dict[tuple[int, int, str], Finding], signal: Signal, start: int, end: int) -> None:
        key = (start, end, signal.category)
        if key in out and out[key].score >= signal.score:
            return
        atlas, owasp = _REFS[signal.category]
        out[key] = Finding(
            detector=NAME,
            category=signal.category,
            score=signal.score,
            spans=(Span(start, end),),
            evidence=signal.evidence,
            rule_id=f"{NAME}.{signal.rule}",
            atlas=atlas,
            owasp=owasp,
        )
