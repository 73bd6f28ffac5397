"""Configuration validation: every error names file, line, table and key, and what was wrong."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from appliance.config import Config, ConfigError, default_config_text, load_config, read_config
from appliance.config.schema import SipAccount

GOOD_HASH = "scrypt$16384$8$1$00112233445566778899aabbccddeeff$" + "ab" * 32

# (name, file text, expected line, table label, key, fragments of the message)
BAD_CASES = [
    (
        "unknown key with a suggestion",
        "[web]\nprot = 3\n",
        2,
        "[web]",
        "prot",
        ["unknown key", "did you mean 'port'?"],
    ),
    ("unknown table", "[webb]\nport = 1\n", 1, "(top level)", "webb", ["unknown key"]),
    (
        "string for an integer",
        '[sip]\nudp_port = "5060"\n',
        2,
        "[sip]",
        "udp_port",
        ['expected an integer, found a string ("5060")'],
    ),
    (
        "float for an integer",
        "[web]\n\nport = 8443.0\n",
        3,
        "[web]",
        "port",
        ["expected an integer, found a float (8443.0)"],
    ),
    (
        "port out of range",
        "[web]\nport = 70000\n",
        2,
        "[web]",
        "port",
        ["expected a value from 1 to 65535, found 70000"],
    ),
    (
        "negative port",
        "[sip]\ntcp_port = -1\n",
        2,
        "[sip]",
        "tcp_port",
        ["expected a value from 0 to 65535, found -1"],
    ),
    (
        "value not among the choices",
        '[service]\nlog_level = "verbose"\n',
        2,
        "[service]",
        "log_level",
        ['expected one of "debug", "info", "warning", "error"', '"verbose"'],
    ),
    (
        "string for a boolean",
        '[network]\nmanage = "yes"\n',
        2,
        "[network]",
        "manage",
        ['expected true or false, found a string ("yes")'],
    ),
    (
        "value for a table",
        "sip = 5\n",
        1,
        "(top level)",
        "sip",
        ["expected a table, found an integer (5)"],
    ),
    (
        "bad address in a list",
        '[web]\naddresses = ["127.0.0.1", "localhost"]\n',
        2,
        "[web]",
        "addresses",
        ["element 2 to be an IPv4 or IPv6 address", "'localhost'"],
    ),
    (
        "missing required key in an array of tables",
        '[[sip.accounts]]\nuser = "1001"\npassword = "longenough"\n\n'
        '[[sip.accounts]]\nuser = "1002"\n',
        5,
        "[[sip.accounts]] #2",
        "password",
        ["required key is missing (expected a string)"],
    ),
    (
        "rule across keys",
        "[sip.registrar]\nmin_expires = 4000\nmax_expires = 3600\n",
        2,
        "[sip.registrar]",
        "min_expires",
        ["expected min_expires <= max_expires"],
    ),
    (
        "colliding TCP ports",
        "[web]\nport = 2855\n",
        2,
        "[web]",
        "port",
        ["expected different TCP ports for web.port and msrp.port, found 2855 for both"],
    ),
    (
        "colliding TCP ports, the later key blamed",
        "[msrp]\nport = 5061\n[web]\nport = 5061\n",
        4,
        "[web]",
        "port",
        ["expected different TCP ports for web.port and sip.tls_port"],
    ),
    (
        "certificate without key",
        '[web]\ncertificate = "/etc/hostname"\n',
        1,
        "[web]",
        "private_key",
        ["expected certificate and private_key to be set together"],
    ),
    (
        "certificate file missing",
        '[web]\ncertificate = "/nonexistent/web.crt"\nprivate_key = "/nonexistent/web.key"\n',
        2,
        "[web]",
        "certificate",
        ['expected "" or an existing file'],
    ),
    (
        "relative certificate path",
        '[web]\ncertificate = "web.crt"\nprivate_key = "/etc/hostname"\n',
        2,
        "[web]",
        "certificate",
        ["an absolute path"],
    ),
    (
        "redundancy out of range",
        "[rtt]\nredundancy = 7\n",
        2,
        "[rtt]",
        "redundancy",
        ["expected a value from 0 to 3, found 7"],
    ),
    (
        "buffer time above RFC 4103's limit",
        "[rtt]\nbuffer_time = 600\n",
        2,
        "[rtt]",
        "buffer_time",
        ["expected a value from 100 to 500 ms, found 600"],
    ),
    (
        "VLAN without parent",
        '[[network.interfaces]]\nname = "eth0.20"\nvlan_id = 20\n',
        1,
        "[[network.interfaces]] #1",
        "parent",
        ["expected a parent interface"],
    ),
    (
        "gateway outside every subnet",
        '[[network.interfaces]]\nname = "eth0"\naddresses = ["192.0.2.10/24"]\n'
        '[[network.routes]]\ndestination = "default"\ngateway = "198.51.100.1"\n',
        6,
        "[[network.routes]] #1",
        "gateway",
        ["expected a gateway inside a configured subnet, found 198.51.100.1"],
    ),
    (
        "interface configured twice",
        '[[network.interfaces]]\nname = "eth0"\n[[network.interfaces]]\nname = "eth0"\n',
        4,
        "[[network.interfaces]] #2",
        "name",
        ["expected each interface once, found 'eth0' again"],
    ),
    (
        "operator name twice",
        f'[[operators]]\nname = "a"\npassword_hash = "{GOOD_HASH}"\n'
        f'[[operators]]\nname = "a"\npassword_hash = "{GOOD_HASH}"\n',
        5,
        "[[operators]] #2",
        "name",
        ["expected each operator name once"],
    ),
    (
        "address without prefix",
        '[[network.interfaces]]\nname = "eth0"\naddresses = ["192.0.2.10"]\n',
        3,
        "[[network.interfaces]] #1",
        "addresses",
        ["an address with a prefix length"],
    ),
    (
        "bad password hash",
        '[[operators]]\nname = "alice"\npassword_hash = "hunter2"\n',
        3,
        "[[operators]] #1",
        "password_hash",
        ["an scrypt password hash"],
    ),
    (
        "array element of the wrong kind",
        "operators = [1]\n",
        1,
        "(top level)",
        "operators",
        ["expected an array of tables, found element 1 to be an integer (1)"],
    ),
    (
        "short SIP password",
        '[[sip.accounts]]\nuser = "1001"\npassword = "short"\n',
        3,
        "[[sip.accounts]] #1",
        "password",
        ["expected at least 8 characters"],
    ),
    (
        "bad SIP URI",
        '[sip.upstream]\nregistrar = "http://pbx"\n',
        2,
        "[sip.upstream]",
        "registrar",
        ["a SIP URI"],
    ),
    (
        "TLS port equal to TCP port",
        "[sip]\ntcp_port = 5070\ntls_port = 5070\n",
        3,
        "[sip]",
        "tls_port",
        ["expected a port other than 5070"],
    ),
    ("invalid TOML", "[web]\nport = \n", 2, "(top level)", "", ["invalid TOML", "(column"]),
    ("duplicate key", "[web]\nport = 1\nport = 2\n", 3, "(top level)", "", ["invalid TOML"]),
]


@pytest.mark.parametrize(
    ("text", "line", "table", "key", "fragments"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_config_is_reported_with_file_line_table_and_key(
    tmp_path: Path, text: str, line: int | None, table: str, key: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    config, issues = read_config(path)
    assert config is None
    matching = [i for i in issues if i.table_name == table and i.key == key]
    assert matching, f"no issue for {table} {key}: {[str(i) for i in issues]}"
    issue = matching[0]
    rendered = str(issue)
    assert rendered.startswith(f"{path}:{line}: " if line else f"{path}")
    assert issue.line == line
    for fragment in fragments:
        assert fragment in rendered, rendered


def test_several_problems_are_all_reported_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[web]\nport = 0\n[rtt]\nredundancy = 9\n[service]\nlog_level = "loud"\n')
    _, issues = read_config(path)
    assert [(i.line, i.key) for i in issues] == [(2, "port"), (4, "redundancy"), (6, "log_level")]


def test_unreadable_file(tmp_path: Path) -> None:
    _, issues = read_config(tmp_path / "missing.toml")
    assert len(issues) == 1
    assert "cannot read the file: No such file or directory" in str(issues[0])
    _, issues = read_config(tmp_path)
    assert "cannot read the file: Is a directory" in str(issues[0])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[service]\nname = "caf\xe9"\n')
    _, issues = read_config(path)
    assert (
        str(issues[0]) == f"{path}:2: (top level) expected UTF-8 text (TOML 1.0), found byte 0xe9"
    )


def test_load_config_raises_with_every_issue(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[web]\nport = 0\nfoo = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.issues) == 2
    assert str(caught.value).count("\n") == 1


def test_valid_full_config(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text(f"""
[service]
name = "Box 7"
shutdown_timeout = 5
[web]
addresses = ["127.0.0.1", "::1"]
[sip]
tls_port = 0
[sip.upstream]
enabled = true
registrar = "sip:pbx.example.net;transport=tcp"
[[sip.accounts]]
user = "1001"
password = "long secret"
[[webrtc.turn_servers]]
url = "turn:192.0.2.1:3478?transport=udp"
[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.10/24", "2001:db8::10/64"]
[[network.interfaces]]
name = "eth0.20"
parent = "eth0"
vlan_id = 20
dhcp = true
[[network.routes]]
destination = "default"
gateway = "192.0.2.1"
[[serial.devices]]
name = "TTY 1"
path = "/dev/ttyUSB0"
mode = "baudot"
baudrate = 45
[[operators]]
name = "alice"
password_hash = "{GOOD_HASH}"
""")
    config = load_config(path)
    assert config.service.shutdown_timeout == 5.0
    assert isinstance(config.service.shutdown_timeout, float)
    assert config.sip.accounts == [SipAccount(user="1001", password="long secret")]
    assert config.network.interfaces[1].vlan_id == 20
    assert config.serial.devices[0].mode == "baudot"
    assert config.operators[0].name == "alice"


def _defaults(cls: type) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type) or f.default_factory is not dataclasses.MISSING:
            value = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(value):
                out[f.name] = _defaults(type(value))
                continue
            out[f.name] = value
        else:
            out[f.name] = f.default
    return out


def test_default_config_is_valid_and_equals_the_schema_defaults() -> None:
    assert load_config(None) == Config()


def test_default_config_spells_out_every_key() -> None:
    """Every scalar key of every table stands in the default file with its default value."""
    parsed = tomllib.loads(default_config_text())
    expected = _defaults(Config)

    def compare(have: dict[str, object], want: dict[str, object], where: str) -> None:
        for key, value in want.items():
            if isinstance(value, dict):
                assert isinstance(have.get(key), dict), f"[{where}{key}] missing"
                compare(have[key], value, f"{where}{key}.")  # type: ignore[arg-type]
            elif value == [] and key in {
                "accounts",
                "turn_servers",
                "interfaces",
                "routes",
                "devices",
                "operators",
            }:
                continue  # arrays of tables appear as commented examples
            else:
                assert key in have, f"{where}{key} is not in the default config"
                assert have[key] == value, f"{where}{key}: {have[key]!r} != {value!r}"

    compare(parsed, expected, "")


def test_default_config_comments_every_key() -> None:
    lines = default_config_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            previous = lines[index - 1]
            assert previous.startswith("#") or "=" in previous, f"uncommented: {line}"


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_check_config_cli_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(default_config_text())
    result = _check_config(path)
    assert result.returncode == 0
    assert result.stdout == f"{path}: ok\n"


def test_check_config_cli_invalid_prints_one_line_per_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[web]\nport = 99999\n[sip]\nudp_port = "x"\nfoo = true\n')
    result = _check_config(path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines == [
        f"{path}:2: [web] port: expected a value from 1 to 65535, found 99999",
        f'{path}:4: [sip] udp_port: expected an integer, found a string ("x")',
        f"{path}:5: [sip] foo: unknown key (known keys: domain, addresses, udp_port, tcp_port, "
        "tls_port, tls_certificate, tls_private_key, t1, t2, t4, session_expires, "
        "max_message_size, trusted_peers, registrar, upstream, accounts)",
        f"{path}: invalid (3 problem(s))",
    ]


def test_check_config_cli_missing_file(tmp_path: Path) -> None:
    result = _check_config(tmp_path / "nope.toml")
    assert result.returncode == 2
    assert "cannot read the file" in result.stdout
