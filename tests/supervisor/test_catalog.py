"""Unit tests of supervisor/catalog.py: merging the pools' catalogs, failures, settling, READY checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.errors import ProtocolError
from shared.protocol import PROTOCOL_VERSION, Ready
from supervisor.catalog import Catalog, check_catalog
from tests.supervisor.fakes import tool_entry

pytestmark = pytest.mark.anyio


def names(catalog: Catalog) -> list[str]:
    return [entry["name"] for entry in catalog.tools()]


async def test_the_listed_tools_merge_every_pool_the_first_pool_winning_a_shared_name() -> None:
    catalog = Catalog(["asyncio", "trio"])
    catalog.take("trio", [tool_entry("shared", category="trio's"), tool_entry("t")], [], {})
    catalog.take("asyncio", [tool_entry("shared", category="asyncio's"), tool_entry("a")], [], {})

    assert names(catalog) == ["a", "shared", "t"]
    shared = catalog.tool("shared")
    assert shared is not None and shared["metadata"]["category"] == "asyncio's"  # configuration order
    assert catalog.tool("nope") is None
    assert list(catalog.entries()) == ["shared", "a", "t"]  # merge order


async def test_a_pool_s_catalog_is_its_last_worker_s() -> None:
    catalog = Catalog(["asyncio"])
    catalog.take("asyncio", [tool_entry("old")], ["module 'x' failed"], {})
    catalog.take("asyncio", [tool_entry("new")], [], {})

    assert names(catalog) == ["new"]
    assert catalog.load_errors() == []


async def test_the_pool_of_a_tool_includes_tools_of_pools_not_announced_yet() -> None:
    catalog = Catalog(["asyncio", "trio"])
    catalog.take("asyncio", [tool_entry("a")], [], {"t": "trio"})

    assert catalog.pool_of == {"a": "asyncio", "t": "trio"}
    assert names(catalog) == ["a"]


async def test_load_errors_are_reported_once_each() -> None:
    catalog = Catalog(["asyncio", "trio"])
    catalog.take("asyncio", [], ["module 'x' failed", "module 'y' failed"], {})
    catalog.take("trio", [], ["module 'x' failed"], {})

    assert catalog.load_errors() == ["module 'x' failed", "module 'y' failed"]


async def test_retry_safe_and_max_concurrency_tables_follow_the_listed_tools() -> None:
    catalog = Catalog(["asyncio"])
    catalog.take(
        "asyncio",
        [
            tool_entry("reader", read_only=True),
            tool_entry("setter", idempotent=True),
            tool_entry("writer", read_only=False),
            tool_entry("scarce", max_concurrency=2),
        ],
        [],
        {},
    )
    assert catalog.retry_safe == {"reader", "setter"}
    assert catalog.tool_limits == {"scarce": 2}

    catalog.set_failed("asyncio", "every asyncio worker is failing")
    assert catalog.retry_safe == frozenset() and catalog.tool_limits == {}


async def test_a_failed_pool_leaves_the_listing_until_its_mark_is_cleared() -> None:
    catalog = Catalog(["asyncio", "trio"])
    catalog.take("asyncio", [tool_entry("a")], [], {})
    catalog.take("trio", [tool_entry("t")], [], {})

    catalog.set_failed("trio", "every trio worker is failing")
    assert names(catalog) == ["a"]
    assert catalog.failures == {"trio": "every trio worker is failing"}
    assert catalog.pool_of["t"] == "trio"  # calls to it fail fast instead of "unknown tool"

    catalog.set_failed("trio", None)
    assert names(catalog) == ["a", "t"]
    assert catalog.failures == {}


async def test_a_failed_pool_back_with_a_new_catalog_is_listed_again() -> None:
    changes: list[int] = []
    catalog = Catalog(["asyncio", "trio"])
    catalog.on_change = lambda: changes.append(catalog.version)
    catalog.take("asyncio", [tool_entry("a")], [], {})
    catalog.set_failed("trio", "every trio worker is failing")
    catalog.take("trio", [tool_entry("t")], [], {})

    assert catalog.failures == {}
    assert names(catalog) == ["a", "t"]
    assert changes == [catalog.version]


async def test_the_catalog_settles_once_every_pool_announced_or_failed() -> None:
    catalog = Catalog(["asyncio", "trio", "trio-queue"])
    catalog.take("asyncio", [tool_entry("a")], [], {})
    catalog.set_failed("trio", "failing")
    assert not catalog.settled.is_set()

    waiter = asyncio.create_task(catalog.wait_settled())
    catalog.take("trio-queue", [], [], {})
    await asyncio.wait_for(waiter, 5)
    assert catalog.settled.is_set()


async def test_waiting_for_the_catalog_to_settle_gives_up_quietly() -> None:
    catalog = Catalog(["asyncio"])
    await catalog.wait_settled(timeout=0.001)  # no TimeoutError
    assert not catalog.settled.is_set()
    assert Catalog([]).settled.is_set()


async def test_changes_are_reported_only_after_the_catalog_settled_and_only_real_ones() -> None:
    changes: list[int] = []
    catalog = Catalog(["asyncio", "trio"])
    catalog.on_change = lambda: changes.append(catalog.version)
    catalog.take("asyncio", [tool_entry("a")], [], {})
    catalog.take("trio", [tool_entry("t")], [], {})
    assert changes == [] and catalog.version == 2

    catalog.take("trio", [tool_entry("t")], [], {})  # the same tools again
    assert changes == [] and catalog.version == 2
    catalog.take("trio", [tool_entry("t"), tool_entry("t2")], [], {})
    catalog.set_failed("asyncio", "failing")
    assert changes == [3, 4]


# -- READY checks -----------------------------------------------------------------------------------


def ready(catalog: Any, elsewhere: Any = None) -> Ready:
    return Ready(
        "asyncio-0", 1, "asyncio", PROTOCOL_VERSION, catalog, [], {} if elsewhere is None else elsewhere
    )


def test_check_catalog_accepts_entries_with_a_name_a_schema_and_metadata() -> None:
    check_catalog(ready([tool_entry("a", read_only=True, max_concurrency=3)], {"t": "trio"}))


@pytest.mark.parametrize(
    ("catalog", "elsewhere", "expected"),
    [
        ({"a": 1}, None, "catalog must be a list and elsewhere a map"),
        ([], ["t"], "catalog must be a list and elsewhere a map"),
        (["a"], None, "malformed catalog entry a"),
        ([{"name": 1, "inputSchema": {}, "metadata": {}}], None, "malformed catalog entry"),
        ([{"name": "a", "inputSchema": [], "metadata": {}}], None, "malformed catalog entry"),
        ([{"name": "a", "inputSchema": {}}], None, "malformed catalog entry"),
        ([tool_entry("a", priority=99)], None, "bad metadata of 'a'"),
        ([tool_entry("a", no_such_field=1)], None, "bad metadata of 'a'"),
    ],
    ids=[
        "catalog-map",
        "elsewhere-list",
        "entry-str",
        "name-int",
        "schema-list",
        "no-metadata",
        "bad-value",
        "bad-key",
    ],
)
def test_check_catalog_refuses_what_the_router_could_not_use(
    catalog: Any, elsewhere: Any, expected: str
) -> None:
    with pytest.raises(ProtocolError, match=f"READY from asyncio-0: {expected}"):
        check_catalog(ready(catalog, elsewhere))
