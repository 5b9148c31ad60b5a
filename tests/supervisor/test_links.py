"""Unit tests of supervisor/links.py: which READY the router accepts, held workers, forgetting."""

from __future__ import annotations

import pytest

from shared.protocol import PROTOCOL_VERSION, Ready
from supervisor.links import Links, Refused
from tests.supervisor.fakes import tool_entry


def ready(worker_id: str = "asyncio-0", pid: int = 11, pool: str = "asyncio", **changes: object) -> Ready:
    message = Ready(
        worker_id, pid, pool, PROTOCOL_VERSION, [tool_entry("echo")], ["module 'x' failed"], {"t": "trio"}
    )
    return message._replace(**changes)


def test_an_expected_worker_is_accepted_and_connected() -> None:
    links = Links(["asyncio", "trio"])
    links.expect("asyncio-0", 11, held=False)
    link = links.accept(b"asyncio-0/11", ready())

    assert (link.worker_id, link.pool, link.pid, link.identity) == (
        "asyncio-0",
        "asyncio",
        11,
        b"asyncio-0/11",
    )
    assert (link.catalog, link.load_errors, link.elsewhere) == (
        [tool_entry("echo")],
        ["module 'x' failed"],
        {"t": "trio"},
    )
    assert not link.held and not link.draining
    assert links.by_identity == {b"asyncio-0/11": link}
    assert links.of(11) is link and links.of(12) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (ready(pid=12), "unexpected worker"),
        (ready(worker_id="asyncio-1"), "unexpected worker"),
        (ready(pool="gpu"), "pool 'gpu' is not served here"),
        (ready(protocol_version=PROTOCOL_VERSION + 1), "speaks protocol version"),
        (ready(catalog="echo"), "catalog must be a list"),
    ],
    ids=["other-pid", "other-worker", "unknown-pool", "other-version", "bad-catalog"],
)
def test_a_ready_that_cannot_be_accepted_is_refused_and_not_connected(message: Ready, reason: str) -> None:
    links = Links(["asyncio"])
    links.expect("asyncio-0", 11, held=False)
    with pytest.raises(Refused, match=reason):
        links.accept(b"peer", message)
    assert links.by_identity == {}


def test_a_held_worker_connects_draining_until_unheld() -> None:
    links = Links(["asyncio"])
    links.expect("asyncio-0", 11, held=True)
    link = links.accept(b"asyncio-0/11", ready())
    assert link.held and link.draining

    assert links.unhold(11) is link
    assert not link.held and not link.draining
    assert links.unhold(11) is None  # not held any more


def test_a_forgotten_process_is_not_accepted_afterwards() -> None:
    links = Links(["asyncio"])
    links.expect("asyncio-0", 11, held=True)
    assert links.forget(11) is None  # it never connected
    with pytest.raises(Refused, match="unexpected worker"):
        links.accept(b"asyncio-0/11", ready())
