"""Pydantic schemas of the three certificate formats (spec §6.1), strict and with located errors.

a2as.org ``a2as.yaml`` sections are open (the published files carry many free-form keys: ``type: class``,
``params``...), but unknown *top-level* sections are refused: a misspelt ``tool:`` must not silently grant or
drop anything. Permission blocks of the paper and native formats are closed for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}
A2AS_SECTIONS = ("agents", "models", "tools", "mcp", "functions", "variables", "networks", "imports", "roles")


Name = Annotated[str, StringConstraints(min_length=1, max_length=512)]


def _protocol(value: str) -> str:
    if value.lower() not in DEFAULT_PORTS:
        raise ValueError(f"unknown protocol (expected one of {', '.join(DEFAULT_PORTS)})")
    return value.lower()


def _method(value: str) -> str:
    if not (value == "*" or (value.isascii() and value.isalpha())):
        raise ValueError("an HTTP method name or '*'")
    return value.upper()


def _port(value: str | int) -> str:
    text = str(value)
    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise ValueError("a port number 1..65535")
    return str(int(text))


def _rfc3339(value: str) -> str:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("an RFC 3339 timestamp such as 2025-10-01T12:00:00Z") from None
    if "T" not in value.upper():
        raise ValueError("an RFC 3339 timestamp such as 2025-10-01T12:00:00Z")
    return value


Protocol = Annotated[str, AfterValidator(_protocol)]
Method = Annotated[str, AfterValidator(_method)]
Port = Annotated[str | int, AfterValidator(_port)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SignaturesModel(_Closed):
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[A-Za-z0-9_-]{43}$")]
    key: Annotated[str, StringConstraints(pattern=r"^ed25519:[A-Za-z0-9_-]{43}$")]
    sig: Annotated[str, StringConstraints(pattern=r"^ed25519:[A-Za-z0-9_-]{86}$")]


class SubjectModel(_Open):
    name: str
    source: str | None = None
    branch: str | None = None
    commit: str | None = None
    scope: list[str] | None = None


class IssuedModel(_Open):
    by: str
    at: Annotated[str, AfterValidator(_rfc3339)]


class ManifestModel(_Open):
    version: str
    schema_url: str = Field(alias="schema")
    subject: SubjectModel
    issued: IssuedModel | None = None
    signatures: SignaturesModel | None = None


class AgentModel(_Open):
    models: list[Name] | None = None
    tools: list[Name] | None = None
    mcp: list[Name] | None = None


class NetworkModel(_Open):
    actions: list[Method] = ["GET"]
    urls: list[str] | None = None
    protocols: list[Protocol] = ["https"]
    ports: list[Port] | None = None


class A2ASOrgModel(_Closed):
    manifest: ManifestModel
    agents: dict[Name, AgentModel | None] | None = None
    models: dict[Name, Any] | None = None
    tools: dict[Name, Any] | None = None
    mcp: dict[Name, Any] | None = None
    functions: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None
    networks: dict[Name, NetworkModel | None] | None = None
    imports: dict[str, Any] | None = None
    roles: dict[str, Any] | None = None


class ToolsModel(_Closed):
    allow: list[Name] = []
    deny: list[Name] = []


class NativeNetworkModel(_Closed):
    host: Name
    methods: list[Method] = ["GET"]
    paths: list[str] = []
    ports: list[Port] = []
    protocols: list[Protocol] = ["https"]


class NativePermissionsModel(_Closed):
    tools: ToolsModel = ToolsModel()
    models: list[Name] = []
    network: list[NativeNetworkModel] = []
    mcp: list[Name] = []


class PaperPermissionsModel(_Closed):
    tools: ToolsModel


class SignedManifestModel(_Open):
    signatures: SignaturesModel | None = None


class NativeModel(_Open):
    permissions: NativePermissionsModel
    manifest: SignedManifestModel | None = None


class PaperModel(_Open):
    agent_id: Name
    permissions: PaperPermissionsModel
    manifest: SignedManifestModel | None = None
