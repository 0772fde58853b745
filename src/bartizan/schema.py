"""Typed YAML loading whose errors name the file, the line and the key.

Every file format bartizan reads (policy, rule data) goes through `load_yaml_model`: the YAML is composed
into nodes that remember their lines, validated by a Pydantic model, and each validation error is turned
into ``file:line: key.path: message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    source: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SchemaError(ValueError):
    """A file that does not match its schema. `issues` lists every problem found, each located."""

    def __init__(self, issues: list[SchemaIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: data files load ~10x faster


def node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along `loc` that exists."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    nxt = value_node
                    line = key_node.start_mark.line + 1
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class Located:
    """Says on which line of `text` a key path stands; nodes are composed only when a line is asked for.
    Subclasses provide `text`, `source`, `_root` (None) and `_composed` (False)."""

    text: str
    source: str
    _root: yaml.Node | None
    _composed: bool

    def line(self, loc: tuple[Any, ...]) -> int | None:
        if not self._composed:
            try:
                self._root = yaml.compose(self.text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:  # libyaml accepted text that the pure-Python composer rejects ("0\t")
                self._root = None
            self._composed = True
        return node_line(self._root, loc)

    def issue(self, loc: tuple[Any, ...], message: str) -> SchemaIssue:
        return SchemaIssue(self.source, self.line(loc), key_path(loc), message)

    def issues_from(self, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[SchemaIssue]:
        """One located issue per Pydantic error; `prefix` is the path of the validated value in the file."""
        out = []
        for err in exc.errors():
            loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            out.append(self.issue(loc, msg))
        return out


class YamlDoc(Located):
    """A parsed YAML text that can say on which line a key path stands (nodes are composed only then)."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._root: yaml.Node | None = None
        self._composed = False
        try:
            self.data: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise SchemaError([SchemaIssue(source, line, "", f"invalid YAML: {exc.problem}")]) from None
        except yaml.YAMLError as exc:
            raise SchemaError([SchemaIssue(source, None, "", f"invalid YAML: {exc}")]) from None


def load_yaml_model(model: type[M], text: str, source: str) -> M:
    """Parse `text` and validate it as `model`, raising SchemaError with every located issue."""
    return validate(model, YamlDoc(text, source))


def validate(model: type[M], doc: YamlDoc) -> M:
    try:
        return model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        raise SchemaError(doc.issues_from(exc)) from None
