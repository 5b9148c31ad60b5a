"""The tools and prompt of the suite's ``input-required-result-*`` scenarios (2026-07-28, SEP-2322).

Each asks the client through its context with the key the scenario expects (``ctx.elicit(..., key=...)``);
the server answers ``input_required`` and runs the function again when the client retries with the answer.
Both runtimes serve them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import trio

from shared import ToolContext, prompt_metadata, tool_metadata

CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"


def _form(prop: str, kind: str = "string") -> dict[str, Any]:
    return {"type": "object", "properties": {prop: {"type": kind}}, "required": [prop]}


def _text(sampled: dict[str, Any]) -> str:
    content = sampled.get("content")
    return str(content.get("text", "")) if isinstance(content, dict) else json.dumps(content)


@tool_metadata(runtime="trio")
async def test_input_required_result_elicitation(ctx: ToolContext) -> str:
    """Ask the user's name, then greet them."""
    answer = await ctx.elicit("What is your name?", _form("name"), key="user_name")
    return f"Hello, {answer.get('content', {}).get('name')}!"


@tool_metadata(runtime="asyncio")
async def test_input_required_result_sampling(ctx: ToolContext) -> str:
    """Ask the client's model a question and return its answer."""
    sampled = await ctx.sample("What is the capital of France?", max_tokens=100, key="capital_question")
    return f"The model says: {_text(sampled)}"


@tool_metadata(runtime="trio")
async def test_input_required_result_list_roots(ctx: ToolContext) -> str:
    """List the client's roots."""
    roots = await ctx.list_roots(key="client_roots")
    return "roots: " + ", ".join(str(root.get("uri")) for root in roots.get("roots", []))


@tool_metadata(runtime="asyncio")
async def test_input_required_result_request_state(ctx: ToolContext) -> str:
    """Ask for a confirmation; the answer reaches the retry through the sealed requestState."""
    answer = await ctx.elicit("Please confirm", _form("ok", "boolean"), key="confirm")
    return f"state-ok: confirmed={answer.get('content', {}).get('ok')}"


@tool_metadata(runtime="asyncio")
async def test_input_required_result_multiple_inputs(ctx: ToolContext) -> str:
    """Ask three things at once (one round): they are requested concurrently."""
    name, greeting, roots = await asyncio.gather(
        ctx.elicit("What is your name?", _form("name"), key="user_name"),
        ctx.sample("Generate a greeting", max_tokens=50, key="greeting"),
        ctx.list_roots(key="client_roots"),
    )
    return (
        f"name={name.get('content', {}).get('name')} greeting={_text(greeting)} "
        f"roots={len(roots.get('roots', []))}"
    )


@tool_metadata(runtime="trio")
async def test_input_required_result_multi_round(ctx: ToolContext) -> str:
    """Two questions in a row: two rounds, the second asked once the first is answered."""
    name = await ctx.elicit("Step 1: What is your name?", _form("name"), key="step1")
    color = await ctx.elicit("Step 2: What is your favorite color?", _form("color"), key="step2")
    return f"{name.get('content', {}).get('name')} likes {color.get('content', {}).get('color')}"


@tool_metadata(runtime="asyncio")
async def test_input_required_result_tampered_state(ctx: ToolContext) -> str:
    """Ask for a confirmation; a retry with an altered requestState is refused before this runs again."""
    answer = await ctx.elicit("Please confirm", _form("ok", "boolean"), key="confirm")
    return f"confirmed={answer.get('content', {}).get('ok')}"


@tool_metadata(runtime="trio")
async def test_input_required_result_capabilities(ctx: ToolContext) -> str:
    """Ask only what the client declared it can answer (its capabilities are in the request's _meta)."""
    declared = (ctx.meta or {}).get(CAPABILITIES_META_KEY) or {}
    answers: list[str] = []
    async with trio.open_nursery() as nursery:

        async def ask_name() -> None:
            answers.append(json.dumps(await ctx.elicit("What is your name?", _form("name"), key="user_name")))

        async def ask_model() -> None:
            answers.append(_text(await ctx.sample("Say hello", max_tokens=20, key="greeting")))

        if "elicitation" in declared:
            nursery.start_soon(ask_name)
        if "sampling" in declared:
            nursery.start_soon(ask_model)
    return " / ".join(answers) or "nothing to ask"


@prompt_metadata(name="test_input_required_result_prompt", runtime="asyncio")
async def input_required_prompt(ctx: ToolContext) -> str:
    """A prompt built from what the user says its context is."""
    answer = await ctx.elicit("What context should the prompt use?", _form("context"), key="user_context")
    return f"Answer with this context in mind: {answer.get('content', {}).get('context')}"
