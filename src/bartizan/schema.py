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


class _SafeLineLoader(yaml.SafeLoader):
    pass


def node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest node along `loc` that exists."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    # Point at the key for a bad value of a scalar, at the value for nested errors.
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


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text into plain data plus its node tree. Syntax errors become a located SchemaError."""
    try:
        root = yaml.compose(text, Loader=_SafeLineLoader)
        data = yaml.load(text, Loader=_SafeLineLoader) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SchemaError([SchemaIssue(source, line, "", f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SchemaError([SchemaIssue(source, None, "", f"invalid YAML: {exc}")]) from None
    return data, root


def load_yaml_model(model: type[M], text: str, source: str) -> M:
    """Parse `text` and validate it as `model`, raising SchemaError with every located issue."""
    data, root = parse_yaml(text, source)
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            issues.append(SchemaIssue(source, node_line(root, loc), key_path(loc), msg))
        raise SchemaError(issues) from None
