"""The demo upstream over real loopback HTTP, parsed by the official `openai` client.

Every wire shape (chat completions whole and streamed, with tool calls; Responses whole and streamed;
embeddings; models; errors) must parse in the SDK, since the gateway's own tests use the demo as their model.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI
from serve_util import serve_app

from bartizan.gateway.demo import (
    DemoRule,
    DemoScript,
    DemoToolCall,
    DemoUpstream,
    embed,
    render_chat,
    render_responses,
)
from bartizan.gateway.demo_stream import pieces
from bartizan.schema import SchemaError

WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
SCRIPT = DemoScript(
    rules=[
        DemoRule(when_contains="boom", error_status=503),
        DemoRule(when_contains="weather", tool_calls=[DemoToolCall(name="get_weather", arguments=WEATHER_ARGS)]),
        DemoRule(
            when_contains="both",
            reply_text="Checking two things.",
            tool_calls=[
                DemoToolCall(name="lookup", arguments='{"q": "a"}'),
                DemoToolCall(name="lookup", arguments='{"q": "b"}'),
            ],
            stream_chunk_chars=3,
        ),
        DemoRule(model="demo-fixed", reply_text="fixed answer"),
    ],
    models=["demo-extra"],
)


@pytest.fixture(scope="module")
def demo() -> DemoUpstream:
    return DemoUpstream(SCRIPT)


@pytest.fixture(scope="module")
def base_url(demo: DemoUpstream) -> Iterator[str]:
    with serve_app(demo.app()) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{base_url}/v1", api_key="sk-demo-test", max_retries=0, timeout=10) as c:
        yield c


def raw_sse(base_url: str, path: str, body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a streamed answer, read without the SDK."""
    out: list[tuple[str | None, str]] = []
    with httpx.stream("POST", f"{base_url}{path}", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        event: str | None = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                out.append((event, line[len("data: ") :]))
                event = None
    return out


# ---------------------------------------------------------------- chat completions


def test_chat_echo_renders_exactly_what_was_received(client: OpenAI, demo: DemoUpstream) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "this picture?"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "see", "arguments": '{"x":1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Thanks [EMAIL_1]"},
    ]
    resp = client.chat.completions.create(model="gpt-x", messages=messages)
    expected = (
        "system: Be brief.\n"
        "user: What is in [image_url] this picture?\n"
        'assistant.tool_call see({"x":1})\n'
        "tool[c1]: a cat\n"
        "assistant: A cat.\n"
        "user: Thanks [EMAIL_1]"
    )
    choice = resp.choices[0]
    assert choice.message.content == expected
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert resp.model == "gpt-x"
    assert resp.object == "chat.completion"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == len(expected.split())
    assert resp.usage.completion_tokens == len(expected.split())
    assert resp.usage.total_tokens == 2 * len(expected.split())
    assert demo.received[-1]["messages"] == messages
    assert demo.received_headers[-1]["authorization"] == "Bearer sk-demo-test"


def test_chat_stream_echo_matches_whole_answer(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "stream me a reasonably long echo please"}]
    whole = client.chat.completions.create(model="demo-echo", messages=messages).choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="demo-echo", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == whole
    assert all(len(d) <= 8 for d in deltas)
    assert len(deltas) == math.ceil(len(whole or "") / 8)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len((whole or "").split())
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)


def test_chat_stream_wire_ends_with_done(base_url: str) -> None:
    body = {"model": "demo-echo", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    events = raw_sse(base_url, "/v1/chat/completions", body)
    assert events[-1] == (None, "[DONE]")
    parsed = [json.loads(d) for _, d in events[:-1]]
    assert "usage" not in parsed[0]  # only present (null) when include_usage was asked for
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_tool_calls_whole(client: OpenAI) -> None:
    resp = client.chat.completions.create(
        model="demo-echo", messages=[{"role": "user", "content": "what's the weather?"}]
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    assert call.id.startswith("call_")


def test_chat_tool_calls_stream(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "do both please"}]
    chunks = list(client.chat.completions.create(model="demo-echo", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Checking two things."
    args: dict[int, str] = {}
    heads: dict[int, tuple[str | None, str | None]] = {}
    for c in chunks:
        for tc in c.choices[0].delta.tool_calls or []:
            assert tc.function is not None
            if tc.id is not None:
                assert tc.index not in heads
                heads[tc.index] = (tc.id, tc.function.name)
            else:
                assert tc.function.name is None
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
            assert len(tc.function.arguments or "") <= 3
    assert [h[1] for h in heads.values()] == ["lookup", "lookup"]
    assert heads[0][0] != heads[1][0]
    assert args == {0: '{"q": "a"}', 1: '{"q": "b"}'}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # the SDK's accumulating helper agrees
    with client.chat.completions.stream(model="demo-echo", messages=messages) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Checking two things."
    assert [(t.function.name, t.function.arguments) for t in msg.tool_calls or []] == [
        ("lookup", '{"q": "a"}'),
        ("lookup", '{"q": "b"}'),
    ]


def test_rule_for_a_model_and_first_match_wins(client: OpenAI) -> None:
    fixed = client.chat.completions.create(model="demo-fixed", messages=[{"role": "user", "content": "hello"}])
    assert fixed.choices[0].message.content == "fixed answer"
    # "weather" comes before the model rule, so it wins even for demo-fixed
    first = client.chat.completions.create(model="demo-fixed", messages=[{"role": "user", "content": "weather"}])
    assert first.choices[0].finish_reason == "tool_calls"
    # matching uses the LAST user message only
    earlier = client.chat.completions.create(
        model="demo-echo",
        messages=[{"role": "user", "content": "weather"}, {"role": "user", "content": "never mind"}],
    )
    assert earlier.choices[0].message.content == "user: weather\nuser: never mind"


def test_errors_parse_as_sdk_exceptions(client: OpenAI, base_url: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="demo-echo", messages=[{"role": "user", "content": "boom"}])
    assert info.value.status_code == 503
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="demo-echo", messages="nope")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    bad = httpx.post(f"{base_url}/v1/chat/completions", content=b"{not json", timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.get(f"{base_url}/v1/nothing-here", timeout=10)
    assert missing.status_code == 404
    assert "error" in missing.json()


# ---------------------------------------------------------------- Responses API


def test_responses_echo_whole(client: OpenAI, demo: DemoUpstream) -> None:
    resp = client.responses.create(model="demo-echo", input="Hello there", instructions="Answer in French.")
    assert resp.output_text == "instructions: Answer in French.\nuser: Hello there"
    assert resp.status == "completed"
    assert resp.object == "response"
    assert [item.type for item in resp.output] == ["message"]
    assert resp.usage is not None and resp.usage.input_tokens == 7 and resp.usage.output_tokens == 7
    assert demo.received[-1]["input"] == "Hello there"


def test_responses_item_list_echo(client: OpenAI) -> None:
    items: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "Look up"}, {"type": "input_text", "text": "x"}]},
        {"type": "function_call", "call_id": "c9", "name": "lookup", "arguments": '{"q":"x"}'},
        {"type": "function_call_output", "call_id": "c9", "output": "found x"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found it."}]},
        {"role": "user", "content": "thanks"},
    ]
    resp = client.responses.create(model="demo-echo", input=items)
    assert resp.output_text == (
        'user: Look up x\nassistant.tool_call lookup({"q":"x"})\ntool[c9]: found x\nassistant: Found it.\nuser: thanks'
    )


def test_responses_function_calls_whole(client: OpenAI) -> None:
    resp = client.responses.create(model="demo-echo", input=[{"role": "user", "content": "weather in Paris"}])
    assert [item.type for item in resp.output] == ["function_call"]
    call = resp.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather" and json.loads(call.arguments) == WEATHER_ARGS
    assert call.call_id.startswith("call_")
    assert resp.output_text == ""


def test_responses_stream_events(client: OpenAI) -> None:
    events = list(client.responses.create(model="demo-echo", input="please do both", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = [e for e in events if e.type == "response.output_text.done"]
    assert text == "Checking two things." and [d.text for d in done] == [text]
    arg_deltas: dict[str, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            arg_deltas[e.item_id] = arg_deltas.get(e.item_id, "") + e.delta
    arg_done = {e.item_id: e.arguments for e in events if e.type == "response.function_call_arguments.done"}
    assert arg_deltas == arg_done and sorted(arg_done.values()) == ['{"q": "a"}', '{"q": "b"}']
    added = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert added == ["message", "function_call", "function_call"]
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Checking two things."
    assert [i.type for i in completed.response.output] == ["message", "function_call", "function_call"]


def test_responses_stream_helper_and_wire(client: OpenAI, base_url: str) -> None:
    with client.responses.stream(model="demo-echo", input="echo via helper") as stream:
        final = stream.get_final_response()
    assert final.output_text == "user: echo via helper"
    events = raw_sse(base_url, "/v1/responses", {"model": "demo-echo", "input": "hi", "stream": True})
    for event, data in events:
        assert event == json.loads(data)["type"]  # the SSE event name repeats the payload type
    assert all(data != "[DONE]" for _, data in events)


# ---------------------------------------------------------------- embeddings and models


def test_embeddings(client: OpenAI, demo: DemoUpstream) -> None:
    default = client.embeddings.create(model="demo-embed", input=["alpha", "beta gamma"])  # SDK asks for base64
    assert demo.received[-1].get("encoding_format") == "base64"
    floats = client.embeddings.create(model="demo-embed", input=["alpha", "beta gamma"], encoding_format="float")
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert floats.data[0].embedding == embed("alpha")
    assert floats.data[0].embedding != floats.data[1].embedding
    assert [d.index for d in floats.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in floats.data)
    assert floats.usage.prompt_tokens == 3 and floats.usage.total_tokens == 3
    assert floats.model == "demo-embed"
    wide = client.embeddings.create(model="demo-embed", input="alpha", dimensions=100, encoding_format="float")
    assert len(wide.data[0].embedding) == 100
    tokens = client.embeddings.create(model="demo-embed", input=[[1, 2], [3]], encoding_format="float")
    assert len(tokens.data) == 2


def test_models(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["demo-echo", "demo-extra", "demo-fixed"]
    card = client.models.retrieve("demo-fixed")
    assert card.owned_by == "bartizan-demo" and card.object == "model"


# ---------------------------------------------------------------- properties over HTTP


@settings(max_examples=25, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x85\u2028\u2029"), max_size=60),
    chunk=st.integers(1, 12),
)
def test_any_text_streams_to_its_echo(text: str, chunk: int) -> None:
    rule_text = f"say:{text}"
    script = DemoScript(rules=[DemoRule(reply_text=rule_text, stream_chunk_chars=chunk)])
    up = DemoUpstream(script)
    transport = httpx.ASGITransport(app=up.app())
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "stream": True}

    async def go() -> list[str]:
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
            r = await c.post("/v1/chat/completions", json=body)
            return [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]

    datas = asyncio.run(go())
    assert datas[-1] == "[DONE]"
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") for d in datas[:-1]]
    assert "".join(d or "" for d in deltas) == rule_text
    assert all(len(d) <= chunk for d in deltas if d)
    assert up.received == [body]


@settings(max_examples=60, deadline=None)
@given(
    roles=st.lists(st.sampled_from(["system", "user", "assistant", "developer"]), max_size=6),
    texts=st.lists(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"), max_size=20)),
)
def test_render_chat_one_line_per_message(roles: list[str], texts: list[str]) -> None:
    msgs = [{"role": r, "content": t} for r, t in zip(roles, texts, strict=False)]
    rendered = render_chat(msgs)
    expected = [f"{m['role']}: {m['content']}" for m in msgs]
    assert rendered == "\n".join(expected)
    assert render_responses(msgs, None) == rendered


@given(text=st.text(max_size=40), size=st.integers(1, 10))
def test_pieces_rejoin(text: str, size: int) -> None:
    parts = list(pieces(text, size))
    assert "".join(parts) == text
    assert all(1 <= len(p) <= size for p in parts)


@given(text=st.text(max_size=40), dims=st.integers(1, 80))
def test_embed_is_deterministic_unit_vector(text: str, dims: int) -> None:
    vec = embed(text, dims)
    assert vec == embed(text, dims) and len(vec) == dims
    assert math.isclose(sum(v * v for v in vec), 1.0, rel_tol=1e-5)


# ---------------------------------------------------------------- script files


rule_strategy = st.builds(
    DemoRule,
    when_contains=st.none() | st.text(max_size=10),
    reply_text=st.none() | st.text(max_size=20),
    tool_calls=st.none()
    | st.lists(
        st.builds(
            DemoToolCall,
            name=st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8),
            arguments=st.text(max_size=10) | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        ),
        max_size=2,
    ),
    stream_chunk_chars=st.integers(1, 50),
)


@settings(max_examples=40, deadline=None)
@given(rules=st.lists(rule_strategy, max_size=3), as_json=st.booleans())
def test_script_file_round_trip(tmp_path_factory: pytest.TempPathFactory, rules: list[DemoRule], as_json: bool) -> None:
    script = DemoScript(rules=rules, models=["m1"])
    data = script.model_dump(exclude_defaults=True)
    path = tmp_path_factory.mktemp("script") / ("s.json" if as_json else "s.yaml")
    # allow_unicode=False: PyYAML writes U+0085 (a YAML line break) raw otherwise, and reading folds it to a space
    path.write_text(json.dumps(data) if as_json else yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")
    assert DemoScript.load(path) == script


def test_script_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("rules:\n  - when_contains: hi\n    reply_txt: typo\n", encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        DemoScript.load(path)
    assert f"{path}:3: rules[0].reply_txt: unknown key" in str(info.value)
    path.write_text("rules:\n  - stream_chunk_chars: 0\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r":2: rules\[0\]\.stream_chunk_chars"):
        DemoScript.load(path)
    with pytest.raises(SchemaError, match="cannot read"):
        DemoScript.load(tmp_path / "missing.yaml")
