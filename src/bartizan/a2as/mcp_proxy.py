"""MCP stdio proxy: certificate-filtered tool lists, gated tool calls and firewall-scanned tool results.

The proxy is itself an MCP server on stdio. It launches the real server as a subprocess (an MCP stdio client)
and stands between the agent and that server:

* ``tools/list`` returns only the tools the gate lets the agent see (the behavior certificate), minus tools
  whose name, description or input schema the firewall blocks (tool poisoning);
* ``tools/call`` asks the gate (certificate and codified policy) first. A denied call, or an "ask" call with no
  approver configured, never reaches the server: the agent gets an error result (``isError: true``);
* every result the server returns is scanned by the firewall as role ``tool``. BLOCK replaces the result with
  an error result that names finding ids, never the text; REDACT rewrites the text parts;
* once any tool call has reached the server, its result is in the agent's context, so later calls are checked
  with ``untrusted=True`` (taint).

Only tools are proxied: the real server's resources, prompts and completions are not exposed (deny by default),
and its server-to-client requests (sampling, elicitation) are refused by the SDK's default client callbacks.
Events never carry tool arguments or result text: tool names, decisions, policy ids and finding ids only.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

try:
    import anyio
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel.server import Server
    from mcp.server.stdio import stdio_server
    from mcp.shared.exceptions import MCPError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("the MCP proxy needs the official MCP SDK: pip install 'mcp>=2.3,<3'") from exc

from bartizan.a2as.events import CERT_TOOL_DENIED, POLICY_ENFORCED, A2ASEvent
from bartizan.pipeline import Firewall
from bartizan.types import Role, ScanResult, Verdict

if TYPE_CHECKING:  # the SDK's stream protocols live in a private module: typing only
    from mcp.shared._stream_protocols import ReadStream, WriteStream
    from mcp.shared.message import SessionMessage

logger = logging.getLogger(__name__)

#: Proxy events outside the A2AS list of spec §8 (that list has no firewall-on-tool-result events).
RESULT_BLOCKED = "mcp.result_blocked"
RESULT_REDACTED = "mcp.result_redacted"
TOOL_POISONED = "mcp.tool_poisoned"

#: Finding ids used when the firewall itself gives no finding.
UNSCANNABLE = "mcp.unscannable_content"
FAIL_CLOSED = "firewall.fail_closed"
_MAX_JSON_LEAVES = 512


class ToolGate(Protocol):
    """Certificate + policy decision point the proxy asks; the lead's adapter wraps helpers C and P.

    ``tool_visible`` is the certificate alone (is the tool declared for this agent?): it filters ``tools/list``
    and is re-checked on every call. ``check`` is the full decision for one call and returns
    ``(decision, policy_ids, reason)`` with decision ``allow``, ``deny`` or ``ask``; anything else is a deny.
    ``reason`` is shown to the agent, so it must not contain secrets.
    """

    def tool_visible(self, tool: str) -> bool: ...

    def check(self, tool: str, arguments: dict[str, Any], untrusted: bool) -> tuple[str, tuple[str, ...], str]: ...


class Upstream(Protocol):
    """The part of `mcp.ClientSession` the proxy uses (a protocol so tests can stand in for the server)."""

    async def list_tools(self, *, params: types.PaginatedRequestParams | None = None) -> types.ListToolsResult: ...

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, read_timeout_seconds: float | None = None
    ) -> types.CallToolResult: ...


@dataclass(frozen=True)
class ApprovalRequest:
    """What a human approver sees for an "ask" decision (arguments included: the approver is trusted)."""

    tool: str
    arguments: Mapping[str, Any]
    policy_ids: tuple[str, ...]
    reason: str
    untrusted: bool


Approver = Callable[[ApprovalRequest], Awaitable[bool]]
EventSink = Callable[[A2ASEvent], None]


class ProxyError(ValueError):
    """The proxy was configured wrongly (for example, no server command)."""


@dataclass(frozen=True)
class ProxyOptions:
    """Knobs of the proxy. Defaults fail closed: unscannable (binary) results are blocked, "ask" is a deny."""

    approve: Approver | None = None
    on_event: EventSink | None = None
    call_timeout_s: float = 60.0
    startup_timeout_s: float = 30.0
    approve_timeout_s: float = 300.0
    scan_tool_descriptions: bool = True
    binary_content: Literal["block", "allow"] = "block"
    max_list_pages: int = 100
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    errlog: TextIO | None = None
    server_name: str = "bartizan-mcp-proxy"

    def __post_init__(self) -> None:
        for name in ("call_timeout_s", "startup_timeout_s", "approve_timeout_s"):
            if not getattr(self, name) > 0:
                raise ProxyError(f"ProxyOptions.{name} must be > 0")
        if self.binary_content not in ("block", "allow"):
            raise ProxyError("ProxyOptions.binary_content must be 'block' or 'allow'")
        if self.max_list_pages < 1:
            raise ProxyError("ProxyOptions.max_list_pages must be >= 1")


def error_result(message: str) -> types.CallToolResult:
    """A tool-level error the agent can read (``isError: true``), as MCP wants for refused calls."""
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


def _finding_ids(result: ScanResult) -> set[str]:
    """Ids of the findings that made the firewall block (all findings if that cannot be told); never text."""
    blocking = {
        f.rule_id or f"{f.detector}.{f.category}"
        for f in result.findings
        if any(r.startswith(f"{f.detector}: ") and f"({f.rule_id or f.evidence}) -> block" in r for r in result.reasons)
    }
    ids = blocking or {f.rule_id or f"{f.detector}.{f.category}" for f in result.findings}
    return ids or {FAIL_CLOSED}


class ProxyCore:
    """The proxy's decisions for one agent session; independent of the transport so it can be tested alone."""

    def __init__(
        self, upstream: Upstream, gate: ToolGate, firewall: Firewall, options: ProxyOptions | None = None
    ) -> None:
        self._upstream = upstream
        self._gate = gate
        self._fw = firewall
        self._opts = options or ProxyOptions()
        self._untrusted = False

    @property
    def untrusted(self) -> bool:
        """True once any tool result has entered the session; later calls are checked as tainted."""
        return self._untrusted

    # --- events and gate calls (fail closed) -------------------------------------------------------------
    def _emit(self, name: str, decision: str, rule: str | None, reason: str | None, **detail: Any) -> None:
        event = A2ASEvent(name=name, decision=decision, rule=rule, reason=reason, detail=detail)
        logger.info("%s decision=%s rule=%s tool=%s", name, decision, rule, detail.get("tool"))
        if self._opts.on_event is not None:
            try:
                self._opts.on_event(event)
            except Exception:  # an audit sink bug must not change the decision
                logger.exception("event sink failed for %s", name)

    def _visible(self, tool: str) -> bool:
        try:
            return bool(self._gate.tool_visible(tool))
        except Exception as exc:
            logger.warning("gate.tool_visible failed (%s); tool treated as not permitted", type(exc).__name__)
            return False

    def _check(self, tool: str, arguments: dict[str, Any], untrusted: bool) -> tuple[str, tuple[str, ...], str]:
        try:
            decision, ids, reason = self._gate.check(tool, arguments, untrusted)
        except Exception as exc:
            return "deny", (), f"policy check failed ({type(exc).__name__})"
        if decision not in ("allow", "ask"):
            decision = "deny"
        return decision, tuple(str(i) for i in ids), str(reason)

    async def _scan(self, text: str) -> ScanResult:
        return await self._fw.scan_async(text, Role.TOOL)

    # --- tools/list -------------------------------------------------------------------------------------
    async def list_tools(self) -> types.ListToolsResult:
        """Every upstream page, filtered; returned as one page (the proxy never hands out cursors)."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(self._opts.max_list_pages):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            with anyio.fail_after(self._opts.call_timeout_s):
                page = await self._upstream.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        kept: list[types.Tool] = []
        for tool in tools:
            if not self._visible(tool.name):
                self._emit(CERT_TOOL_DENIED, "hidden", tool.name, "not in the behavior certificate", tool=tool.name)
                continue
            if self._opts.scan_tool_descriptions:
                text = "\n".join(
                    s for s in (tool.name, tool.title, tool.description, json.dumps(tool.input_schema)) if s
                )
                scan = await self._scan(text)
                if scan.verdict is Verdict.BLOCK:
                    ids = sorted(_finding_ids(scan))
                    self._emit(
                        TOOL_POISONED, "hidden", ids[0], "tool description blocked", tool=tool.name, findings=ids
                    )
                    continue
            kept.append(tool)
        return types.ListToolsResult(tools=kept)

    # --- tools/call -------------------------------------------------------------------------------------
    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None) -> types.CallToolResult:
        """Gate, forward, scan. Never raises for a refused call: refusals are error results."""
        args = dict(arguments or {})
        untrusted = self._untrusted
        if not self._visible(name):
            self._emit(CERT_TOOL_DENIED, "deny", name, "not in the behavior certificate", tool=name)
            return error_result(f"Tool call denied: '{name}' is not permitted by the behavior certificate.")
        decision, ids, reason = self._check(name, args, untrusted)
        rule = ids[0] if ids else None
        if decision == "ask":
            if not await self._approved(ApprovalRequest(name, args, ids, reason, untrusted)):
                self._emit(POLICY_ENFORCED, "ask", rule, reason, tool=name, policy_ids=list(ids), untrusted=untrusted)
                return error_result(
                    f"Tool call to '{name}' needs human approval and was not approved ({', '.join(ids) or reason})."
                )
        elif decision != "allow":
            self._emit(POLICY_ENFORCED, "deny", rule, reason, tool=name, policy_ids=list(ids), untrusted=untrusted)
            return error_result(f"Tool call denied by policy {', '.join(ids) or '(unnamed)'}: {reason}")
        timeout = self._opts.call_timeout_s
        try:
            with anyio.fail_after(timeout):
                result = await self._upstream.call_tool(name, args, read_timeout_seconds=timeout)
        except TimeoutError:
            return error_result(f"Tool '{name}' did not answer within {timeout:g} s.")
        except MCPError as exc:  # the server's message is untrusted text: pass the code only
            return error_result(f"Tool '{name}' failed on the server (MCP error {exc.code}).")
        except Exception as exc:
            return error_result(f"Tool '{name}' failed in the proxy ({type(exc).__name__}).")
        finally:
            # Taint even on failure: the server may have acted, and partial output may reach the agent elsewhere.
            self._untrusted = True
        return await self._filter_result(name, result)

    async def _approved(self, request: ApprovalRequest) -> bool:
        if self._opts.approve is None:
            return False
        try:
            with anyio.fail_after(self._opts.approve_timeout_s):
                return bool(await self._opts.approve(request))
        except Exception as exc:
            logger.warning("approver failed (%s); call not approved", type(exc).__name__)
            return False

    # --- result scanning --------------------------------------------------------------------------------
    async def _filter_result(self, name: str, result: types.CallToolResult) -> types.CallToolResult:
        blocked: set[str] = set()
        redacted = 0
        content: list[types.ContentBlock] = []
        for block in result.content:
            if isinstance(block, types.TextContent):
                scan = await self._scan(block.text)
                if scan.verdict is Verdict.BLOCK:
                    blocked |= _finding_ids(scan)
                elif scan.sanitized != block.text:
                    redacted += 1
                    block = block.model_copy(update={"text": scan.sanitized})
            elif isinstance(block, types.EmbeddedResource) and isinstance(block.resource, types.TextResourceContents):
                scan = await self._scan(block.resource.text)
                if scan.verdict is Verdict.BLOCK:
                    blocked |= _finding_ids(scan)
                elif scan.sanitized != block.resource.text:
                    redacted += 1
                    resource = block.resource.model_copy(update={"text": scan.sanitized})
                    block = block.model_copy(update={"resource": resource})
            elif isinstance(block, types.ResourceLink):
                fields = (block.name, block.title, block.description, str(block.uri))
                scan = await self._scan("\n".join(s for s in fields if s))
                if scan.verdict is Verdict.BLOCK:
                    blocked |= _finding_ids(scan)
            elif self._opts.binary_content == "block":  # images, audio, blobs: the firewall cannot read them
                blocked.add(UNSCANNABLE)
            content.append(block)
        structured = result.structured_content
        if structured is not None:
            structured, leaf_ids, leaf_redactions = await self._filter_json(structured)
            blocked |= leaf_ids
            redacted += leaf_redactions
        if blocked:
            ids = sorted(blocked)
            self._emit(RESULT_BLOCKED, "block", ids[0], "tool result blocked by the firewall", tool=name, findings=ids)
            return error_result(f"Tool result from '{name}' was blocked by the firewall (findings: {', '.join(ids)}).")
        if redacted:
            self._emit(RESULT_REDACTED, "redact", None, "tool result redacted", tool=name, parts=redacted)
        return types.CallToolResult(content=content, structured_content=structured, is_error=result.is_error)

    async def _filter_json(self, value: Any) -> tuple[Any, set[str], int]:
        """Scan structured content as one JSON text; on REDACT, rewrite its string leaves one by one."""
        text = scan_text_of(value)
        scan = await self._scan(text)
        if scan.verdict is Verdict.BLOCK:
            return value, _finding_ids(scan), 0
        if scan.sanitized == text:
            return value, set(), 0
        budget = [_MAX_JSON_LEAVES]
        blocked: set[str] = set()
        count = [0]

        async def walk(node: Any) -> Any:
            if isinstance(node, str):
                budget[0] -= 1
                if budget[0] < 0:
                    blocked.add(UNSCANNABLE)
                    return node
                leaf = await self._scan(node)
                if leaf.verdict is Verdict.BLOCK:
                    blocked.update(_finding_ids(leaf))
                if leaf.sanitized != node:
                    count[0] += 1
                return leaf.sanitized
            if isinstance(node, list):
                return [await walk(v) for v in node]
            if isinstance(node, dict):
                return {k: await walk(v) for k, v in node.items()}
            return node

        new = await walk(value)
        return new, blocked, count[0]


def scan_text_of(value: Any) -> str:
    """The JSON text the proxy scans for a structured result (stable key order, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def build_server(core: ProxyCore, name: str = "bartizan-mcp-proxy") -> Server[Any]:
    """The downstream MCP server: tools only, every request answered by `core`."""

    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await core.list_tools()

    async def on_call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return await core.call_tool(params.name, params.arguments)

    return Server(name, on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def serve_proxy(
    command: Sequence[str],
    gate: ToolGate,
    firewall: Firewall,
    *,
    options: ProxyOptions | None = None,
    streams: tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]] | None = None,
) -> None:
    """Launch `command` as the real MCP server and serve the guarded view of it until the client disconnects.

    `streams` (read, write) serve an in-process client instead of this process's stdin/stdout. The real
    server is stopped (stdin closed, then terminated) when serving ends, whatever the reason.
    """
    if not command or not command[0]:
        raise ProxyError("mcp proxy: no server command given")
    opts = options or ProxyOptions()
    params = StdioServerParameters(
        command=command[0],
        args=list(command[1:]),
        env=dict(opts.env) if opts.env is not None else None,
        cwd=opts.cwd,
    )
    async with stdio_client(params, errlog=opts.errlog or sys.stderr) as (up_read, up_write):
        async with ClientSession(up_read, up_write) as upstream:
            with anyio.fail_after(opts.startup_timeout_s):
                await upstream.initialize()
            server = build_server(ProxyCore(upstream, gate, firewall, opts), opts.server_name)
            init = server.create_initialization_options()
            if streams is not None:
                await server.run(streams[0], streams[1], init)
                return
            async with stdio_server() as (read, write):
                await server.run(read, write, init)


def run_proxy(
    command: Sequence[str], gate: ToolGate, firewall: Firewall, *, options: ProxyOptions | None = None
) -> None:
    """Blocking CLI entry point: serve MCP on stdin/stdout. Do not call from inside a running event loop."""
    anyio.run(functools.partial(serve_proxy, list(command), gate, firewall, options=options))
