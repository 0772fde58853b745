"""Certificate text -> JSON value, with the YAML -> JSON rules of spec §6.3 and located errors.

A certificate is signed over the JCS form of its JSON value, so the loader must produce the same value that
any other JSON-minded implementation would, and refuse what has none:

- YAML timestamps stay strings (a YAML 1.1 loader would turn ``issued.at`` into a ``datetime``);
- duplicate keys and non-string keys are errors (``1:``, ``yes:`` and ``null:`` keys are not strings);
- NaN, the infinities, binary and set values are errors; integers must be exact doubles (JCS numbers are);
- JSON text (it starts with ``{`` or ``[``) is read by the JSON parser, not as YAML, because YAML 1.1 reads
  the JSON number ``1e30`` as a string.

Every problem becomes a :class:`~bartizan.schema.SchemaIssue` naming the file, the line and the key path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from bartizan.a2as.jcs import int_is_exact_double
from bartizan.schema import Located, SchemaError, SchemaIssue, key_path

Syntax = Literal["json", "yaml"]
MAX_TEXT_CHARS = 1_000_000
MAX_VALUES = 200_000  # bounds alias expansion ("billion laughs") while walking the value

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _CertLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml ships no type hints
    """SafeLoader without the timestamp resolver, rejecting duplicate and non-string keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"non-string key {key!r} (quote it: JSON keys are strings)", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_CertLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CertLoader.add_constructor(_TIMESTAMP, yaml.SafeLoader.construct_yaml_str)  # explicit !!timestamp: keep the text


class _Duplicate(ValueError):
    pass


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (NaN and Infinity are rejected)")


@dataclass
class CertDocument(Located):
    """A parsed certificate text: its JSON value, and the lines its key paths stand on (JSON text is composed
    as YAML for that: JSON is nearly a YAML subset)."""

    data: Any
    text: str
    source: str
    syntax: Syntax
    _root: yaml.Node | None = field(default=None, repr=False)
    _composed: bool = field(default=False, repr=False)


def parse_document(text: str, source: str) -> CertDocument:
    """Parse certificate text into a JSON value; SchemaError lists every located problem."""
    if len(text) > MAX_TEXT_CHARS:
        raise SchemaError([SchemaIssue(source, None, "", f"certificate larger than {MAX_TEXT_CHARS} characters")])
    stripped = text.lstrip("\ufeff \t\r\n")
    syntax: Syntax = "json" if stripped[:1] in ("{", "[") else "yaml"
    doc = CertDocument(None, text, source, syntax)
    if syntax == "json":
        try:
            body = text[1:] if text.startswith("\ufeff") else text
            doc.data = json.loads(body, object_pairs_hook=_json_pairs, parse_constant=_json_constant)
        except _Duplicate as exc:
            raise SchemaError([_duplicate_issue(doc, str(exc))]) from None
        except json.JSONDecodeError as exc:
            raise SchemaError([SchemaIssue(source, exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None
        except (ValueError, RecursionError) as exc:
            raise SchemaError([SchemaIssue(source, None, "", f"invalid JSON: {exc}")]) from None
    else:
        try:
            doc.data = yaml.load(text, Loader=_CertLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise SchemaError([SchemaIssue(source, line, "", f"invalid YAML: {exc.problem}")]) from None
        except (yaml.YAMLError, RecursionError) as exc:
            raise SchemaError([SchemaIssue(source, None, "", f"invalid YAML: {type(exc).__name__}")]) from None
    issues = json_value_issues(doc)
    if issues:
        raise SchemaError(issues)
    return doc


def _duplicate_issue(doc: CertDocument, key: str) -> SchemaIssue:
    """Locate a JSON duplicate key by walking the composed node tree (the JSON parser gives no position)."""
    try:
        root = yaml.compose(doc.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, loc = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                if key_node.value in seen and key_node.value == key:
                    return SchemaIssue(
                        doc.source, key_node.start_mark.line + 1, key_path(loc), f"duplicate key {key!r}"
                    )
                seen.add(key_node.value)
                stack.append((value_node, (*loc, key_node.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*loc, i)) for i, child in enumerate(node.value))
    return SchemaIssue(doc.source, None, "", f"duplicate key {key!r}")


def json_value_issues(doc: CertDocument) -> list[SchemaIssue]:
    """Every value in `doc.data` that has no JCS form, located."""
    issues: list[SchemaIssue] = []
    count = 0
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc.data, ())]
    while stack:
        value, loc = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return [doc.issue((), f"more than {MAX_VALUES} values (alias expansion?)")]
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    issues.append(doc.issue(loc, f"non-string key {key!r}"))
                else:
                    stack.append((item, (*loc, key)))
        elif isinstance(value, list):
            stack.extend((item, (*loc, i)) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not int_is_exact_double(value):
                issues.append(doc.issue(loc, "integer too large to be exact in JSON (quote it)"))
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                issues.append(doc.issue(loc, "NaN and Infinity are not JSON"))
        elif isinstance(value, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                issues.append(doc.issue(loc, "lone surrogate in string"))
        else:
            issues.append(doc.issue(loc, f"a {type(value).__name__} value is not JSON"))
    issues.sort(key=lambda i: (i.line or 0, i.key))
    return issues


def dump_document(data: Any, syntax: Syntax) -> str:
    """Text for `data` in `syntax`; `parse_document` of the result gives `data` back."""
    if syntax == "json":
        return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    # SafeDumper quotes every string that its resolvers (timestamps included) would read as something else.
    out: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
    return out
