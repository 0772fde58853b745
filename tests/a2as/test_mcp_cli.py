"""`bartizan mcp-proxy` end to end: the real CLI as a stdio subprocess, the real certificate (signed, pinned)
and Cedar policy through `GuardGate`, the fixture MCP server behind it."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bartizan.a2as.certificates import keygen, sign

FIXTURE = str(Path(__file__).with_name("mcp_fixture_server.py"))
CERT = 'agent_id: mcp-agent\npermissions:\n  tools: {allow: ["read_inbox", "list_folders", "send_email"]}\n'
POLICY = """version: 1
policies:
  - {id: EXT_MAIL, severity: high, text: "Only corporate recipients."}
enforce:
  - {policy: EXT_MAIL, tool: "send_email", arg: "to", must_match: "@corp\\\\.example$"}
"""


def test_cli_proxy_enforces_certificate_and_policy(tmp_path: Path) -> None:
    (tmp_path / "cert.yaml").write_text(CERT)
    priv, pub = keygen(tmp_path / "keys")
    sign(tmp_path / "cert.yaml", priv, tmp_path / "cert.signed.yaml")
    (tmp_path / "policy.yaml").write_text(POLICY)
    markers = tmp_path / "ran"
    markers.mkdir()
    args = [
        "-m",
        "bartizan.cli.main",
        "mcp-proxy",
        "--cert",
        str(tmp_path / "cert.signed.yaml"),
        "--issuer",
        str(pub),
        "--policy",
        str(tmp_path / "policy.yaml"),
        "--",
        sys.executable,
        FIXTURE,
        str(markers),
    ]
    params = StdioServerParameters(command=sys.executable, args=args)
    seen: dict[str, object] = {}

    async def body() -> None:
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                seen["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
                seen["out"] = await session.call_tool("send_email", {"to": "x@evil.test", "body": "hi"})
                seen["in"] = await session.call_tool("send_email", {"to": "a@corp.example", "body": "hi"})
                seen["gone"] = await session.call_tool("delete_all", {})

    anyio.run(body)
    assert "delete_all" not in seen["tools"] and "send_email" in seen["tools"]  # type: ignore[operator]
    assert seen["out"].is_error and not seen["in"].is_error and seen["gone"].is_error  # type: ignore[attr-defined]
    ran = {p.name.removesuffix(".ran") for p in markers.glob("*.ran")}
    assert "send_email" in ran and "delete_all" not in ran
