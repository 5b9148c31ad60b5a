"""Unit tests of supervisor/connections.py: idle connections make room, busy ones are never evicted
(issue 16, a front no client can choke)."""

from __future__ import annotations

from supervisor.connections import ConnectionTable


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True

    def __repr__(self) -> str:
        return self.name


def admitted(table: ConnectionTable, client: str, count: int, prefix: str = "c") -> list[FakeConnection]:
    connections = [FakeConnection(f"{prefix}{i}") for i in range(count)]
    for connection in connections:
        assert table.admit(connection, client) is None
    return connections


def test_a_full_table_evicts_the_longest_idle_connection_for_a_new_one() -> None:
    table = ConnectionTable(max_connections=3, max_per_client=10)
    first, second, third = admitted(table, "10.0.0.1", 3)
    table.busy(first)
    newcomer = FakeConnection("new")
    assert table.admit(newcomer, "10.0.0.2") is None
    assert [c.evicted for c in (first, second, third)] == [False, True, False]
    assert table.open == 3 and table.stats.evicted == 1


def test_a_connection_idle_again_is_the_newest_idle_one() -> None:
    table = ConnectionTable(max_connections=2, max_per_client=10)
    first, second = admitted(table, "a", 2)
    table.busy(first)
    table.idle(first)  # answered: now idle for less time than second
    assert table.admit(FakeConnection("new"), "b") is None
    assert second.evicted and not first.evicted


def test_when_every_connection_is_busy_a_new_one_is_refused() -> None:
    table = ConnectionTable(max_connections=2, max_per_client=10)
    for connection in admitted(table, "a", 2):
        table.busy(connection)
    reason = table.admit(FakeConnection("new"), "b")
    assert reason is not None and "max_connections" in reason and reason.startswith("server busy")
    assert table.open == 2 and table.stats.refused == 1


def test_an_address_at_its_cap_evicts_only_its_own_idle_connections() -> None:
    table = ConnectionTable(max_connections=100, max_per_client=2)
    other = admitted(table, "b", 1, "b")
    mine = admitted(table, "a", 2, "a")
    newcomer = FakeConnection("a-new")
    assert table.admit(newcomer, "a") is None
    assert mine[0].evicted and not mine[1].evicted and not other[0].evicted
    table.busy(mine[1])
    table.busy(newcomer)
    reason = table.admit(FakeConnection("a-3"), "a")
    assert reason is not None and "max_connections_per_client" in reason
    assert table.admit(FakeConnection("b-2"), "b") is None  # another address still gets in


def test_a_flood_of_idle_connections_leaves_room_for_a_request() -> None:
    table = ConnectionTable(max_connections=1000, max_per_client=1_000_000)
    silent = admitted(table, "127.0.0.1", 1000, "silent")
    real = FakeConnection("real")
    assert table.admit(real, "127.0.0.1") is None
    table.busy(real)
    assert sum(c.evicted for c in silent) == 1 and not real.evicted
    assert table.open == 1000


def test_remove_forgets_and_is_a_no_op_for_unknown_connections() -> None:
    table = ConnectionTable(max_connections=2, max_per_client=2)
    first, second = admitted(table, "a", 2)
    table.remove(first)
    table.remove(first)
    table.remove(FakeConnection("never"))
    assert table.open == 1 and table.clients() == 1
    table.remove(second)
    assert table.open == 0 and table.clients() == 0
    assert not first.evicted and table.stats.evicted == 0
