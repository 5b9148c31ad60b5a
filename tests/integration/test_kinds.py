"""Resources, templates, prompts and completions served by real worker processes of both runtimes, through
the official client in both protocol eras."""

from __future__ import annotations

import base64
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourceUpdated

from tests.conftest import RunningSupervisor, spawn_supervisor, stdio_server
from tests.integration.kind_tools import PNG_1X1

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
def server() -> Any:
    running = spawn_supervisor("--tools", "tests.integration.kind_tools")
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("mode", MODES)
async def test_lists_show_every_kind_from_both_runtimes(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        resources = {r.uri: r for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert set(resources) >= {"it://asyncio/text", "it://trio/blob"}
    assert resources["it://trio/blob"].mime_type == "image/png"
    assert templates == {"it://asyncio/users/{id}", "it://trio/items/{item}"}
    assert set(prompts) == {"it_greet", "it_picture", "it_ask"}
    assert [(a.name, a.required) for a in prompts["it_greet"].arguments or []] == [("name", True)]
    assert prompts["it_greet"].description == "Greet someone (asyncio)."


@pytest.mark.parametrize("mode", MODES)
async def test_reads_text_binary_and_templates(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        text = (await client.read_resource("it://asyncio/text")).contents[0]
        blob = (await client.read_resource("it://trio/blob")).contents[0]
        user = (await client.read_resource("it://asyncio/users/42")).contents[0]
        item = (await client.read_resource("it://trio/items/box")).contents[0]
    assert isinstance(text, types.TextResourceContents)
    assert (str(text.uri), text.mime_type, text.text) == (
        "it://asyncio/text",
        "text/plain",
        "text from asyncio",
    )
    assert isinstance(blob, types.BlobResourceContents)
    assert (blob.mime_type, blob.blob) == ("image/png", base64.b64encode(base64.b64decode(PNG_1X1)).decode())
    assert isinstance(user, types.TextResourceContents)
    assert str(user.uri) == "it://asyncio/users/42" and user.mime_type == "application/json"
    assert user.text.replace(" ", "").replace("\n", "") == '{"id":42,"runtime":"asyncio"}'
    assert isinstance(item, types.TextResourceContents) and item.text == "item box from trio"


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_and_failing_resources_are_errors_with_the_uri(
    server: RunningSupervisor, mode: str
) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("it://nowhere")
        with pytest.raises(MCPError) as broken:
            await client.read_resource("it://asyncio/broken")
        with pytest.raises(MCPError) as bad_id:
            await client.read_resource("it://asyncio/users/not-a-number")
    assert unknown.value.error.code == -32602 and unknown.value.error.data == {"uri": "it://nowhere"}
    assert broken.value.error.code == -32603
    assert "the disk is on fire" in broken.value.error.message
    assert broken.value.error.data == {"uri": "it://asyncio/broken"}
    assert bad_id.value.error.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_text_image_and_embedded_resource(server: RunningSupervisor, mode: str) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        greeting = await client.get_prompt("it_greet", {"name": "Ada"})
        picture = await client.get_prompt("it_picture", {"uri": "it://x"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("it_greet", {})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("it_nothing", {})
    assert greeting.description == "Greet someone (asyncio)."
    assert [(m.role, m.content) for m in greeting.messages] == [
        ("user", types.TextContent(type="text", text="Hello Ada, from asyncio"))
    ]
    image, embedded = picture.messages
    assert isinstance(image.content, types.ImageContent) and image.content.data == PNG_1X1
    assert embedded.role == "assistant" and isinstance(embedded.content, types.EmbeddedResource)
    resource = embedded.content.resource
    assert isinstance(resource, types.TextResourceContents) and resource.text == "embedded by trio"
    assert missing.value.error.code == -32602 and unknown.value.error.code == -32602


@pytest.mark.parametrize("mode", MODES)
async def test_completions_of_a_prompt_argument_and_a_template_variable(
    server: RunningSupervisor, mode: str
) -> None:
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        names = await client.complete(
            types.PromptReference(type="ref/prompt", name="it_greet"), {"name": "name", "value": "a"}
        )
        items = await client.complete(
            types.ResourceTemplateReference(type="ref/resource", uri="it://trio/items/{item}"),
            {"name": "item", "value": "bo"},
        )
        nothing = await client.complete(
            types.PromptReference(type="ref/prompt", name="it_picture"), {"name": "uri", "value": ""}
        )
    assert names.completion.values == ["Ada", "Alan"] and names.completion.total == 2
    assert items.completion.values == ["bo-1", "bo-2", "trio"]
    assert nothing.completion.values == []


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
async def test_a_prompt_logs_and_samples_through_its_context(server: RunningSupervisor, mode: str) -> None:
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append((params.level, params.data))

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"{prompt}!"), model="m"
        )

    async with Client(
        server.url, mode=mode, logging_callback=on_log, sampling_callback=sample, log_level="debug"
    ) as client:
        result = await client.get_prompt("it_ask", {"topic": "owls"})
    assert result.messages[0].content == types.TextContent(type="text", text="the model says: about owls!")
    assert ("info", "asking about owls") in logs


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
async def test_a_resource_read_asks_the_client_for_its_roots(server: RunningSupervisor, mode: str) -> None:
    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

    async with Client(server.url, mode=mode, list_roots_callback=roots) as client:
        result = await client.read_resource("it://asyncio/roots")
    assert result.contents[0].text == "file:///work"  # type: ignore[union-attr]


async def test_a_subscribed_session_hears_an_update_a_worker_publishes(server: RunningSupervisor) -> None:
    updated: list[str] = []
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            heard.set()

    async with Client(server.url, mode="legacy", message_handler=on_message) as client:
        resources = client.server_capabilities.resources
        assert resources is not None and resources.subscribe and resources.list_changed
        await client.subscribe_resource("it://asyncio/text")
        assert (await client.call_tool("it_touch", {"uri": "it://other"})).is_error is False
        assert (await client.call_tool("it_touch", {"uri": "it://asyncio/text"})).is_error is False
        with anyio.fail_after(10):
            await heard.wait()
        await client.unsubscribe_resource("it://asyncio/text")
    assert updated == ["it://asyncio/text"]


async def test_list_changed_for_prompts_and_resources_when_a_worker_brings_new_ones(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "extra"
    server = supervisor_factory(  # no spare: the module decides its entries at import, and a spare
        # imported it before the marker existed, so only a fresh start brings the new entries
        "--tools", "tests.integration.kind_tools", "--spare-workers", "0",
        env={"IT_EXTRA_KIND_MARKER": str(marker)},
    )  # fmt: skip
    prompts_changed, resources_changed = anyio.Event(), anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.PromptListChangedNotification):
            prompts_changed.set()
        elif isinstance(message, types.ResourceListChangedNotification):
            resources_changed.set()

    async with Client(server.url, mode="legacy", message_handler=on_message) as client:
        assert (
            client.server_capabilities.prompts is not None and client.server_capabilities.prompts.list_changed
        )
        assert "it_extra_prompt" not in {p.name for p in (await client.list_prompts()).prompts}
        marker.write_text("on")
        os.kill(server.worker("trio-0")["pid"], signal.SIGKILL)
        with anyio.fail_after(15):
            await prompts_changed.wait()
            await resources_changed.wait()
        assert "it_extra_prompt" in {p.name for p in (await client.list_prompts()).prompts}
        contents = (await client.read_resource("it://trio/extra")).contents[0]
        assert isinstance(contents, types.TextResourceContents) and contents.text == "extra"


async def test_a_listen_stream_gets_the_updates_and_list_changes_it_asked_for(
    supervisor_factory: Any, tmp_path: Path
) -> None:
    """2026-07-28 has no sessions: a client opens ``subscriptions/listen`` and gets, on that stream, the
    resource updates a worker publishes and the list changes of a restarted worker, as it filtered them."""
    marker = tmp_path / "extra"
    server = supervisor_factory(  # no spare: the module decides its entries at import, and a spare
        # imported it before the marker existed, so only a fresh start brings the new entries
        "--tools", "tests.integration.kind_tools", "--spare-workers", "0",
        env={"IT_EXTRA_KIND_MARKER": str(marker)},
    )  # fmt: skip
    async with Client(server.url, mode="2026-07-28") as client:  # type: ignore[arg-type]
        async with client.listen(
            prompts_list_changed=True, resource_subscriptions=["it://trio/blob"]
        ) as subscription:
            await client.call_tool("it_touch", {"uri": "it://asyncio/text"})  # not asked for
            await client.call_tool("it_touch", {"uri": "it://trio/blob"})
            with anyio.fail_after(10):
                assert await subscription.__anext__() == ResourceUpdated(uri="it://trio/blob")
            marker.write_text("on")
            os.kill(server.worker("trio-0")["pid"], signal.SIGKILL)
            with anyio.fail_after(15):
                assert await subscription.__anext__() == PromptsListChanged()
        assert "it_extra_prompt" in {p.name for p in (await client.list_prompts()).prompts}


@pytest.mark.parametrize("mode", MODES)
async def test_a_worker_dying_during_a_read_is_an_error_answer_not_a_hang(
    supervisor_factory: Any, tmp_path: Path, mode: str
) -> None:
    marker = tmp_path / "crash"
    server = supervisor_factory(
        "--tools", "tests.integration.kind_tools", env={"IT_CRASH_MARKER": str(marker)}
    )
    async with Client(server.url, mode=mode) as client:  # type: ignore[arg-type]
        assert (await client.read_resource("it://asyncio/crash")).contents[0].text == "alive"  # type: ignore[union-attr]
        marker.write_text("on")
        with anyio.fail_after(30), pytest.raises(MCPError) as lost:
            await client.read_resource("it://asyncio/crash")
        marker.unlink()
        assert lost.value.error.data == {"uri": "it://asyncio/crash"}
        assert "asyncio-0" in lost.value.error.message
        with anyio.fail_after(30):  # the worker comes back and serves again
            while True:
                try:
                    result = await client.read_resource("it://asyncio/crash")
                    break
                except MCPError:
                    await anyio.sleep(0.2)
        assert result.contents[0].text == "alive"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_every_kind_over_stdio_with_a_subscription(mode: str) -> None:
    updated = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.set()

    params = stdio_server("tests.integration.kind_tools")
    async with Client(params, read_timeout_seconds=30, mode=mode, message_handler=on_message) as client:  # type: ignore[arg-type]
        item = (await client.read_resource("it://trio/items/a")).contents[0]
        greeting = await client.get_prompt("it_greet", {"name": "Alan"})
        names = await client.complete(
            types.PromptReference(type="ref/prompt", name="it_greet"), {"name": "name", "value": "g"}
        )
        if mode == "legacy":  # subscriptions are of the handshake era
            await client.subscribe_resource("it://trio/blob")
            await client.call_tool("it_touch", {"uri": "it://trio/blob"})
            with anyio.fail_after(10):
                await updated.wait()
    assert isinstance(item, types.TextResourceContents) and item.text == "item a from trio"
    assert greeting.messages[0].content == types.TextContent(type="text", text="Hello Alan, from asyncio")
    assert names.completion.values == ["Grace"]
