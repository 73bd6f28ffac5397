"""The rollback record and the applied network on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from appliance.config.schema import InterfaceConfig, NetworkConfig
from appliance.net.model import Address, Link, NetState
from appliance.net.netconfig import network_from_json, network_to_json, parse_network
from appliance.net.records import Record, Store

NETWORK = NetworkConfig(
    manage=True,
    dns_servers=["192.0.2.53"],
    interfaces=[InterfaceConfig(name="eth0", addresses=["192.0.2.10/24"], dhcp=True)],
)


def record() -> Record:
    return Record(
        mode="try",
        status="pending",
        created=1000.0,
        deadline=1120.0,
        scope=["eth0"],
        snapshot=NetState(
            links=(Link("eth0", up=True, index=2),),
            addresses=(Address("eth0", "192.0.2.9/24"),),
        ),
        prior_network=None,
        prior_resolv="nameserver 192.0.2.1\n",
        network=NETWORK,
    )


def test_record_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.prepare()
    store.save_record(record())
    assert stat.S_IMODE(store.record_path.stat().st_mode) == 0o600
    assert not list(store.directory.glob(".rollback.json.*")), "no temporary file left behind"
    loaded = store.load_record()
    assert loaded == record()
    assert loaded is not None and loaded.unfinished
    assert loaded.seconds_left(now=1100.0) == 20.0
    store.clear_record()
    assert store.load_record() is None


def test_a_try_keeps_the_record_it_replaced(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.prepare()
    kept = Record(**{**record().__dict__, "mode": "apply", "status": "done", "deadline": None})
    tried = Record(**{**record().__dict__, "previous": kept})
    store.save_record(tried)
    loaded = store.load_record()
    assert loaded == tried
    assert loaded is not None and loaded.previous is not None
    assert (loaded.previous.mode, loaded.previous.status) == ("apply", "done")
    assert not loaded.previous.unfinished


def test_unusable_record_is_kept_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path)
    store.prepare()
    store.record_path.write_text('{"version": 1, "mode": "try"}')
    assert store.load_record() is None
    assert store.record_path.with_suffix(".json.bad").exists()
    assert "unusable" in caplog.text


def test_applied_network_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.prepare()
    assert store.load_applied() is None
    store.save_applied(NETWORK)
    assert store.load_applied() == NETWORK
    text = store.applied_path.read_text()
    assert "password" not in text and "operators" not in text, "only [network] is stored"
    store.save_applied(None)
    assert store.load_applied() is None


def test_network_json_is_validated_again() -> None:
    assert network_from_json(network_to_json(NETWORK)) == NETWORK
    data = network_to_json(NETWORK)
    data["interfaces"][0]["addresses"] = ["not-an-address"]
    with pytest.raises(ValueError, match="addresses"):
        network_from_json(data)
    with pytest.raises(TypeError):
        network_from_json(["eth0"])


def test_parse_network_locates_problems_in_the_whole_file() -> None:
    text = (
        '[web]\ncertificate = "/nonexistent.pem"\n\n[network]\nmanage = true\n'
        '[[network.interfaces]]\nname = "eth0"\nmtu = 12\n'
    )
    network, problems = parse_network(text, "box.toml")
    assert network is None
    assert [str(p) for p in problems] == [
        "box.toml:8: [[network.interfaces]] #1 mtu: expected 0 or at least 68, found 12"
    ], "only [network] is checked: the helper need not read the web certificate"
    assert parse_network("[network\n", "x.toml")[1][0].message.startswith("invalid TOML")
    assert parse_network("network = 3\n", "x.toml")[1][0].message == (
        "expected a table, found an integer (3)"
    )
    empty, none = parse_network("", "x.toml")
    assert empty == NetworkConfig() and none == []
    assert json.loads(json.dumps(network_to_json(NETWORK)))["interfaces"][0]["name"] == "eth0"
