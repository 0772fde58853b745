"""Composable, seeded transformations of a red-team request: the core types, the registry and composition.

A transformation turns the text of a request into what is sent to a target: one or more user turns, and
whether the target has to decode something before it can act on it. Every transformation is a pure
function of (text, rng), so a run is reproducible from its seed; `rng_for` derives a per-case generator
from a run seed so that adding a case never changes the rendering of another.

Families: "stylised" (verse, fiction, role-play, academic, allegory: `bartizan.redteam.styles`),
"encoding" and "structural" (`bartizan.redteam.obfuscations`), "multi_turn" (`bartizan.redteam.multiturn`).
Compose with ``compose("verse_ballad+base64")``: steps run left to right, each on the final user turn of
the previous step. The templates here are deliberately different from `bartizan.train.augment`, which
trains the learned detectors; reusing those would measure the detectors on their training distribution.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol, runtime_checkable

Family = Literal["stylised", "encoding", "structural", "multi_turn"]
FAMILIES: tuple[Family, ...] = ("stylised", "encoding", "structural", "multi_turn")
Role = Literal["system", "user", "assistant"]

#: the names of the built-in transformations, in catalogue order (a test keeps this equal to the registry)
ALL: tuple[str, ...] = (
    # stylised (bartizan.redteam.styles)
    "verse_ballad",
    "verse_limerick",
    "verse_sonnet",
    "verse_free",
    "narrative",
    "roleplay",
    "academic",
    "allegory",
    # encoding (bartizan.redteam.obfuscations)
    "base64",
    "hex",
    "rot13",
    "leetspeak",
    "homoglyph",
    "zero_width",
    "unicode_tags",
    # structural (bartizan.redteam.obfuscations)
    "many_shot",
    "refusal_suppression",
    "prefix_injection",
    "payload_split",
    # multi-turn (bartizan.redteam.multiturn)
    "crescendo",
    "crescendo_fiction",
)


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message as sent to a target."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a transformation produced.

    `messages` are sent in order. Only user (and optional system) messages are scripted: with several user
    messages, the runner sends them one at a time and appends the target's own reply after each, as in a
    live conversation (crescendo). `must_decode` says the target has to decode an encoding before it can
    act (base64, hex, ROT13, Unicode tags), which judges use to accept an answer given in that encoding.
    `steps` names the transformations applied, first to last.
    """

    messages: tuple[Message, ...]
    must_decode: bool = False
    steps: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not any(m.role == "user" for m in self.messages):
            raise ValueError("a rendering needs at least one user message")

    @property
    def final(self) -> str:
        """The last user turn: the one that carries the request."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    @property
    def user_turns(self) -> tuple[str, ...]:
        return tuple(m.content for m in self.messages if m.role == "user")

    @property
    def multi_turn(self) -> bool:
        return len(self.user_turns) > 1

    def text(self) -> str:
        """All scripted message contents joined by blank lines (for checks and logs of hashes)."""
        return "\n\n".join(m.content for m in self.messages)

    def as_openai(self) -> list[dict[str, str]]:
        """The messages as OpenAI chat-completions dicts (single-turn renderings only send this at once)."""
        return [{"role": m.role, "content": m.content} for m in self.messages]


def single(text: str, name: str, *, must_decode: bool = False, **meta: str) -> Rendered:
    """A one-user-message rendering."""
    return Rendered((Message("user", text),), must_decode=must_decode, steps=(name,), meta=dict(meta))


@runtime_checkable
class Transform(Protocol):
    """A named, pure, seeded transformation of a request's text."""

    @property
    def name(self) -> str: ...

    @property
    def family(self) -> Family: ...

    @property
    def description(self) -> str: ...

    def apply(self, text: str, rng: random.Random) -> Rendered: ...


TransformFn = Callable[[str, random.Random], Rendered]


@dataclass(frozen=True, slots=True)
class FunctionTransform:
    """A transformation made from a plain function; what the built-in modules register."""

    name: str
    family: Family
    description: str
    fn: TransformFn

    def apply(self, text: str, rng: random.Random) -> Rendered:
        return self.fn(text, rng)


@dataclass(frozen=True, slots=True)
class Composite:
    """Steps applied left to right; each later step transforms the final user turn of the one before.

    A multi-turn step may only come first (its scripted earlier turns talk about the plain request); the
    steps after it restyle its final turn. The family is the last step's, except that a composite with a
    multi-turn step is "multi_turn".
    """

    steps: tuple[Transform, ...]

    @property
    def name(self) -> str:
        return "+".join(s.name for s in self.steps)

    @property
    def family(self) -> Family:
        if any(s.family == "multi_turn" for s in self.steps):
            return "multi_turn"
        return self.steps[-1].family

    @property
    def description(self) -> str:
        return " then ".join(s.description for s in self.steps)

    def apply(self, text: str, rng: random.Random) -> Rendered:
        out = self.steps[0].apply(text, rng)
        for step in self.steps[1:]:
            nxt = step.apply(out.final, rng)
            idx = max(i for i, m in enumerate(out.messages) if m.role == "user")
            out = Rendered(
                out.messages[:idx] + nxt.messages + out.messages[idx + 1 :],
                must_decode=out.must_decode or nxt.must_decode,
                steps=out.steps + nxt.steps,
                meta={**out.meta, **nxt.meta},
            )
        return out


class TransformRegistry:
    """Name → transformation. Duplicate names raise, naming the transformation already registered."""

    def __init__(self) -> None:
        self._items: dict[str, Transform] = {}

    def register(self, transform: Transform) -> Transform:
        if "+" in transform.name or not transform.name:
            raise ValueError(f"invalid transformation name {transform.name!r} ('+' joins compositions)")
        if transform.family not in FAMILIES:
            raise ValueError(f"{transform.name}: unknown family {transform.family!r}; expected one of {FAMILIES}")
        if transform.name in self._items:
            raise ValueError(
                f"transformation {transform.name!r} is already registered: {self._items[transform.name]!r}"
            )
        self._items[transform.name] = transform
        return transform

    def add(self, name: str, family: Family, description: str) -> Callable[[TransformFn], TransformFn]:
        """Decorator: register a plain ``fn(text, rng) -> Rendered`` under `name`."""

        def deco(fn: TransformFn) -> TransformFn:
            self.register(FunctionTransform(name, family, description, fn))
            return fn

        return deco

    def get(self, name: str) -> Transform:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown transformation {name!r}; known: {', '.join(self._items)}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def catalogue(self) -> list[dict[str, str]]:
        """Serialisable list of {name, family, description} for the CLI and the docs."""
        return [{"name": t.name, "family": t.family, "description": t.description} for t in self._items.values()]

    def compose(self, spec: str) -> Transform:
        """``"a+b+c"`` → the composite of registered steps (one name → that transformation itself)."""
        parts = [p.strip() for p in spec.split("+")]
        if not spec.strip() or any(not p for p in parts):
            raise ValueError(f"empty step in transformation spec {spec!r}")
        steps = tuple(self.get(p) for p in parts)
        if len(steps) == 1:
            return steps[0]
        for i, s in enumerate(steps):
            if s.family == "multi_turn" and i > 0:
                raise ValueError(f"{spec!r}: the multi-turn step {s.name!r} must come first")
        return Composite(steps)


@lru_cache(maxsize=1)
def default_registry() -> TransformRegistry:
    """The built-in transformations (built once, on first use; modules imported here to avoid cycles)."""
    from bartizan.redteam import multiturn, obfuscations, styles

    reg = TransformRegistry()
    for mod in (styles, obfuscations, multiturn):
        for t in mod.transforms():
            reg.register(t)
    return reg


def get(name: str) -> Transform:
    """A built-in transformation by name, or a composition of built-ins (``"verse_sonnet+rot13"``)."""
    return default_registry().compose(name)


def compose(spec: str, registry: TransformRegistry | None = None) -> Transform:
    """Compose ``"a+b"`` from `registry` (the built-ins by default)."""
    return (registry or default_registry()).compose(spec)


def rng_for(seed: int, *keys: str) -> random.Random:
    """A generator derived from a run seed and keys (case id, transformation name): stable across runs and
    independent of the order in which cases are rendered."""
    digest = hashlib.sha256("\x1f".join([str(seed), *keys]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 (reproducible rendering, not secrets)


def render(spec: str, text: str, seed: int, *keys: str) -> Rendered:
    """Convenience: ``get(spec).apply(text, rng_for(seed, spec, *keys))``."""
    return get(spec).apply(text, rng_for(seed, spec, *keys))


def by_family(names: Iterable[str] = ALL) -> dict[str, list[str]]:
    """Built-in names grouped by family label."""
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(get(n).family, []).append(n)
    return out


@dataclass(frozen=True, slots=True)
class ModelRewrite:
    """Hook for rewriting by an attacker model (the lead wires an OpenAI-compatible client in later).

    `rewrite(meta_prompt, text)` returns the attacker model's rewrite of `text` following `meta_prompt`.
    The rendering records in ``meta["kept_meaning"]`` whether the rewrite kept the request's content words
    (`bartizan.redteam.meaning.kept_meaning` at `min_fraction`); with `fallback` set, a rewrite that lost
    the meaning is replaced by that template transformation's rendering, so no attempt is silently empty.
    """

    name: str
    meta_prompt: str
    rewrite: Callable[[str, str], str]
    family: Family = "stylised"
    description: str = "rewritten by an attacker model"
    min_fraction: float = 0.8
    fallback: Transform | None = None

    def apply(self, text: str, rng: random.Random) -> Rendered:
        from bartizan.redteam.meaning import kept_meaning

        out = self.rewrite(self.meta_prompt, text).strip()
        kept = bool(out) and kept_meaning(text, out, min_fraction=self.min_fraction)
        if not kept and self.fallback is not None:
            fb = self.fallback.apply(text, rng)
            meta = {**fb.meta, "kept_meaning": "false", "fallback": self.fallback.name}
            return Rendered(fb.messages, fb.must_decode, (self.name, *fb.steps), meta)
        return single(out or text, self.name, kept_meaning="true" if kept else "false")
