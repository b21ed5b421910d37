"""The embedded broker: one Valkey server per data directory, shared, persistent, and gone
once nobody uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from scheduler.firing.broker import broker_url, embedded_broker
from scheduler.firing.embedded_broker import EmbeddedBroker
from scheduler.settings import Settings
from tests.services import free_port, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """The broker of a fresh data directory, stopped after the test."""
    made = EmbeddedBroker(tmp_path / "data" / "broker")
    yield made
    made.stop()


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _keeper_pid(broker: EmbeddedBroker) -> int:
    return int(json.loads(broker.state_path.read_text())["pid"])


def _gone(pid: int) -> bool:
    """The process has exited (a zombie left to an init that does not reap counts too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_second_process_of_a_data_dir_joins_the_running_server(broker: EmbeddedBroker) -> None:
    url, started = broker.ensure_running()
    again, started_again = EmbeddedBroker(broker.folder).ensure_running()

    assert started and not started_again
    assert again == url
    assert _client(url).ping()


def test_processes_starting_together_share_one_server(broker: EmbeddedBroker) -> None:
    code = (
        "import sys; from pathlib import Path;"
        "from scheduler.firing.embedded_broker import EmbeddedBroker;"
        "print(EmbeddedBroker(Path(sys.argv[1])).ensure_running()[0])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(broker.folder)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    urls = {proc.communicate(timeout=60)[0].strip() for proc in procs}

    assert len(urls) == 1
    assert urls == {broker.url()}


def test_no_broker_configured_means_the_data_dirs_embedded_broker(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    try:
        url = broker_url(settings)
        assert url == embedded_broker(settings).url()
        assert url.startswith("redis://127.0.0.1:")
    finally:
        embedded_broker(settings).stop()


def test_a_configured_broker_starts_nothing(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, broker_url="amqp://guest@localhost//", data_dir=tmp_path)

    assert broker_url(settings) == "amqp://guest@localhost//"
    assert not (tmp_path / "broker").exists()


def test_queued_messages_survive_a_restart(broker: EmbeddedBroker) -> None:
    url, _ = broker.ensure_running()
    client = _client(url)
    client.lpush("celery", "message-1", "message-2")
    client.close()

    broker.stop()
    assert broker.url() is None
    url, started = broker.ensure_running()

    assert started
    assert _client(url).lrange("celery", 0, -1) == [b"message-2", b"message-1"]


def test_a_stale_state_file_is_replaced_by_a_new_server(broker: EmbeddedBroker) -> None:
    broker.folder.mkdir(parents=True)
    broker.state_path.write_text(json.dumps({"port": free_port(), "pid": 999_999}))

    url, started = broker.ensure_running()

    assert started
    assert _client(url).ping()


def test_a_server_of_another_data_dir_is_never_joined(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    other = EmbeddedBroker(tmp_path / "other" / "broker")
    try:
        other_url, _ = other.ensure_running()
        broker.folder.mkdir(parents=True)
        # As if the port recorded here had since been taken by the other server.
        broker.state_path.write_text(other.state_path.read_text())

        url, started = broker.ensure_running()

        assert started
        assert url != other_url
    finally:
        other.stop()


def test_keeper_stops_the_server_once_no_client_is_left(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", idle_stop_s=0.5)
    url, _ = broker.ensure_running()
    keeper = _keeper_pid(broker)

    # The state goes last, once the server is down.
    wait_for(lambda: not broker.state_path.exists(), 30, "the idle broker to stop")

    assert broker.url() is None
    with pytest.raises(redis.ConnectionError):
        _client(url).ping()
    wait_for(lambda: _gone(keeper), 10, "the keeper to exit")


def test_keeper_keeps_the_server_while_a_client_is_connected(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", idle_stop_s=0.5)
    url, _ = broker.ensure_running()
    client = _client(url)
    try:
        client.ping()
        client.delete("sundial:embedded:claimed")
        pubsub = client.pubsub()  # a connection held open, like a worker's
        pubsub.subscribe("anything")
        with pytest.raises(AssertionError):
            # Several idle periods pass with the client connected: it must not stop.
            wait_for(lambda: broker.url() is None, 3, "the broker to stop")
        pubsub.close()
        client.close()
        wait_for(lambda: not broker.state_path.exists(), 30, "the broker to stop once left alone")
    finally:
        broker.stop()
