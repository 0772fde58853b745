"""Detector registry: a decorator next to each detector, typed configs, a serialisable catalogue.

Registries are instances. `default_registry` holds the built-in detectors, imported on first use (never
when `bartizan` itself is imported); tests and plug-ins can build their own. A duplicate name raises.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bartizan.detectors.base import DetectorConfig, NoConfig, ScanContext
from bartizan.types import Finding

BUILTIN_MODULES = (
    "bartizan.detectors.signatures",
    "bartizan.detectors.secrets",
    "bartizan.detectors.pii",
    "bartizan.detectors.hidden_text",
    "bartizan.detectors.canary",
    "bartizan.detectors.insecure_code",
    "bartizan.detectors.urls",
    "bartizan.detectors.size",
    "bartizan.detectors.injection",
    "bartizan.detectors.jailbreak",
    "bartizan.detectors.harmful_intent",
    "bartizan.detectors.known_attacks",
)


class ConfigError(ValueError):
    """A detector configuration that does not match the detector's schema."""


@dataclass(frozen=True)
class DetectorSpec:
    """What the registry knows about one detector."""

    name: str
    factory: Callable[[Any], Any]
    config_schema: type[DetectorConfig]
    description: str
    categories: tuple[str, ...] = ()
    kind: str = "rules"
    version: str = "1"
    source: str = field(default="")

    def build(self, config: Mapping[str, Any] | DetectorConfig | None = None) -> BoundDetector:
        if isinstance(config, DetectorConfig):
            cfg = config
        else:
            try:
                cfg = self.config_schema.model_validate(dict(config or {}))
            except ValidationError as exc:
                raise ConfigError(f"detector {self.name!r}: {exc}") from exc
        return BoundDetector(self, self.factory(cfg), cfg)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "version": self.version,
            "categories": list(self.categories),
            "config_schema": self.config_schema.model_json_schema(),
        }


@dataclass(frozen=True)
class BoundDetector:
    """A detector built with its configuration. Built once per pipeline, shared across messages."""

    spec: DetectorSpec
    impl: Any
    config: DetectorConfig

    @property
    def name(self) -> str:
        return self.spec.name

    def scan(self, ctx: ScanContext) -> list[Finding]:
        return list(self.impl.scan(ctx))


class _FunctionDetector:
    """Adapter that lets a plain function `fn(ctx, config) -> Iterable[Finding]` act as a detector."""

    __slots__ = ("config", "fn")

    def __init__(self, fn: Callable[[ScanContext, Any], Iterable[Finding]], config: DetectorConfig) -> None:
        self.fn = fn
        self.config = config

    def scan(self, ctx: ScanContext) -> Iterable[Finding]:
        return self.fn(ctx, self.config)


class Registry:
    def __init__(self, builtin_modules: Iterable[str] = ()) -> None:
        self._specs: dict[str, DetectorSpec] = {}
        self._builtin_modules = tuple(builtin_modules)
        self._loaded = not self._builtin_modules
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        config: type[DetectorConfig] = NoConfig,
        description: str = "",
        categories: Iterable[str] = (),
        kind: str = "rules",
        version: str = "1",
    ) -> Callable[[Any], Any]:
        """Decorator for a detector class `Cls(config)` with `.scan(ctx)`, or a function `fn(ctx, config)`."""

        def decorate(obj: Any) -> Any:
            if name in self._specs:
                raise ValueError(f"detector {name!r} is already registered by {self._specs[name].source}")
            if inspect.isclass(obj):
                factory: Callable[[Any], Any] = obj
            elif callable(obj):
                factory = functools.partial(_FunctionDetector, obj)
            else:
                raise TypeError("a detector is a class or a function")
            doc = description or (inspect.getdoc(obj) or "").split("\n")[0]
            self._specs[name] = DetectorSpec(
                name=name,
                factory=factory,
                config_schema=config,
                description=doc,
                categories=tuple(categories),
                kind=kind,
                version=version,
                source=f"{obj.__module__}.{obj.__qualname__}",
            )
            return obj

        return decorate

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if not self._loaded:
                for module in self._builtin_modules:
                    importlib.import_module(module)
                self._loaded = True

    def get(self, name: str) -> DetectorSpec:
        self._ensure_loaded()
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise KeyError(f"unknown detector {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._specs)

    def catalogue(self) -> list[dict[str, Any]]:
        self._ensure_loaded()
        return [self._specs[n].describe() for n in sorted(self._specs)]


default_registry = Registry(BUILTIN_MODULES)
detector = default_registry.register
