"""Checks of the RFC 4475 torture-message corpus itself (no parser involved)."""

import hashlib
import re

import pytest

from tests.sip.rfc4475_messages import MESSAGES, TortureMessage

# RFC 4475 §3, in the order of its table of contents: (section, short name).
RFC_4475_MESSAGES: tuple[tuple[str, str], ...] = (
    ("3.1.1.1", "wsinv"),
    ("3.1.1.2", "intmeth"),
    ("3.1.1.3", "esc01"),
    ("3.1.1.4", "escnull"),
    ("3.1.1.5", "esc02"),
    ("3.1.1.6", "lwsdisp"),
    ("3.1.1.7", "longreq"),
    ("3.1.1.8", "dblreq"),
    ("3.1.1.9", "semiuri"),
    ("3.1.1.10", "transports"),
    ("3.1.1.11", "mpart01"),
    ("3.1.1.12", "unreason"),
    ("3.1.1.13", "noreason"),
    ("3.1.2.1", "badinv01"),
    ("3.1.2.2", "clerr"),
    ("3.1.2.3", "ncl"),
    ("3.1.2.4", "scalar02"),
    ("3.1.2.5", "scalarlg"),
    ("3.1.2.6", "quotbal"),
    ("3.1.2.7", "ltgtruri"),
    ("3.1.2.8", "lwsruri"),
    ("3.1.2.9", "lwsstart"),
    ("3.1.2.10", "trws"),
    ("3.1.2.11", "escruri"),
    ("3.1.2.12", "baddate"),
    ("3.1.2.13", "regbadct"),
    ("3.1.2.14", "badaspec"),
    ("3.1.2.15", "baddn"),
    ("3.1.2.16", "badvers"),
    ("3.1.2.17", "mismatch01"),
    ("3.1.2.18", "mismatch02"),
    ("3.1.2.19", "bigcode"),
    ("3.2.1", "badbranch"),
    ("3.3.1", "insuf"),
    ("3.3.2", "unkscm"),
    ("3.3.3", "novelsc"),
    ("3.3.4", "unksm2"),
    ("3.3.5", "bext01"),
    ("3.3.6", "invut"),
    ("3.3.7", "regaut01"),
    ("3.3.8", "multi01"),
    ("3.3.9", "mcl01"),
    ("3.3.10", "bcast"),
    ("3.3.11", "zeromf"),
    ("3.3.12", "cparam01"),
    ("3.3.13", "cparam02"),
    ("3.3.14", "regescrt"),
    ("3.3.15", "sdp01"),
    ("3.4.1", "inv2543"),
)

# SHA-256 of each <name>.dat file of the RFC's Appendix A archive.
APPENDIX_A_SHA256: dict[str, str] = {
    "wsinv": "d6f6cdee99cd0a1f8e3d9a0fdd67c877700e19ab86d8186dada06f61260e3e61",
    "intmeth": "b957a8292c1c0a9851fe94705b90f94320738f43aacde64998e401f742ef688d",
    "esc01": "be3a316d4ce5f69cad474646191e390dd4b50fc8371e44b5197fe1237781973e",
    "escnull": "263fe2ecd12a5ccbb6c67b3174e9211d11da9b600e7d69666a86d2ee42873e90",
    "esc02": "9a9c59449f00327b02071feafc8e5c2a261c98c818044167894cc17809a12199",
    "lwsdisp": "d1b36b6316c12824f6f04bf6b1fd1f021cade9b74871693b9c3474cd9fa7f4e6",
    "longreq": "185739292bc676760e5b1cca77c87705aa570240171c506ad76f8c35af0ecdaa",
    "dblreq": "a6be48426565c2a705389c4ce2ea17e57b891cb13f80490a2cb9392c797b46ef",
    "semiuri": "87bbaed6b4b354dbd3c5c7a20e66686303c63e43a0aa19b89de1ac75231611a2",
    "transports": "33b4553a3b9418121b099ff07882535151edd6a1e81898c63a916aad2cbf90bc",
    "mpart01": "92147c8e24997bac59629e1b163767697d0d6d499af87f89e325d69968bec3ba",
    "unreason": "4f939d6ebf4817eea70f011d3209e83732872ffc20ffd304b244084dc392f4d7",
    "noreason": "07e11e470a69fffa3674de805e5165d1351a9439a91045ee70c9570ea24ab4fe",
    "badinv01": "9ee2b88f2e0b5a9eeb9bf729b6177f0a0c7d0b5e6c84be593e0480d7962f3ab8",
    "clerr": "d9da629086a38df433438fb0fb19a8730f34516f049a5520dd0cac3285485290",
    "ncl": "7ea6538edc1f054fdb6cd1c821040460cffca3cb682fa2e8e2a502d92170b4c2",
    "scalar02": "53158177326568e9964bce5dcfac27a2bf8a90953bbc03f6c5e2775864a97e4b",
    "scalarlg": "0957eca31737e3592eb1418bb41e9f5219278a78ff420111620d7fb60175b551",
    "quotbal": "e61978a2ea359fc666f0336fe4dbc623447532280e3273ea98119b3d3f788c84",
    "ltgtruri": "bcacb2dc17610e8cc8f9b8b0e3d6ee65ab473f93787a03bbd33579e1cea473df",
    "lwsruri": "3e22ceeca585ad23cc180208e2dad94e0a5aa4bb877a61cac443aa927f758b9e",
    "lwsstart": "f884e5626c6c5b1210cfc4a3540b8a28bd52939cff092f3f0c5c971e032adb0e",
    "trws": "64ae20694026e28c10746b57386b7fd1276de02b6f8d42d418070e87d6f4499f",
    "escruri": "c3cf30af13a9d107829cc105effd79355f1139c6ecc683a048b4c27951f8f416",
    "baddate": "1208a6e3e0c8a8c33a06a1f3733d158413cb72e58c379d094c4ecea11e9d4c28",
    "regbadct": "575d27530275814c1c98be164808fac89a0e2b4fc899dadcd97e6ba499437bda",
    "badaspec": "f8f6e2f4247287b0be6adb5ac222a6db4759395e44d27d2ddb9b39393e94867e",
    "baddn": "9d9428e8017092f194ec11077ba6865c251308cdfd7fd9db6a993b28e5748951",
    "badvers": "037d702d19e934bfeebbd2609050d7d54928d590cf90c78f3914522771dd8e03",
    "mismatch01": "a2c285636e451e75420da0cc62ee55ca3e398827008418befbfb078726bf0793",
    "mismatch02": "01b287f9a9c492f7f57405c36c8a2af0e2393896ed2d25fb92b502f2a6722bc4",
    "bigcode": "f79450070975da54c3525c9a5cbe75bae3c9d8cb92eba609772c26f66f225c2e",
    "badbranch": "cb049c727f16b5ec49e822f9e8b7d0ee20ca2d20ffb50baecd0b411a5e64fa7d",
    "insuf": "1e3efd9f3b238c6351ba12bc7eb46d843f2761b5d4a6b82b63bffdf07f2c5aee",
    "unkscm": "81be1a6a566c7ab52fe1c58c4a75440dfd697ad04c5e09fa71340de7da7b8bbb",
    "novelsc": "9a50a7343fcf685e77c4d0f477138a28f32a41c75aa566d200f3df210b01e648",
    "unksm2": "f6914409ced613ef5eb56e264d2f096dac26ab9e397d6a638934d2027f1f6acb",
    "bext01": "57181987c02c4f5752b7aa8c2847311f6184216ce7621e40303015949e70761c",
    "invut": "9b39e824947df46f90f824cd308fb3c118f548d94637f581101e355b381a0d92",
    "regaut01": "885ba0488872cfc04a3c7622854b8381955a5ee890745d6010834e3731a73faa",
    "multi01": "d156ab12105b4bfd8a6498de6f7195087058162b8cda1606169855b722411791",
    "mcl01": "887191619bf003b7e87399200b5cf4c3b5397344dbf70288ad5e23bd157b7fe4",
    "bcast": "073637c63597199179cf5fc91b980b2d530c066a0048ea3b908772def57b4c36",
    "zeromf": "50954ef47acca4f9f5263ded06246d06dee4e2ee508a8d284191795d7fddf365",
    "cparam01": "dfa6b5cdb289adc694b9b7e103ebfa7a2167335c46e5dc9de67055021910ae1c",
    "cparam02": "e93574215bd1d804bb46cc15ca6176b567def7ea1b15f72ab2c2dcf598af465a",
    "regescrt": "dab4087c133348b06fd7b3c4c7ef15094f8754e265e4e8c2137bb3ecda2ef477",
    "sdp01": "497c5f1ced6c7b579b48075e2dca919ce9b819a735964128a6e744a3a0b9e57f",
    "inv2543": "76fac8afe22dee49ea696b511621946694897ac7030fc5d07f57c8b487ce0521",
}

# Syntactically invalid messages outside §3.1.2: multiple rows of single-valued
# header fields (RFC 3261 §7.3.1), to which RFC 4475 asks for an error response.
INVALID_OUTSIDE_3_1_2 = frozenset({"multi01", "mcl01"})

# Valid messages whose Content-Length the RFC says does not frame the octets that
# follow: §3.1.1.8, the REGISTER's body is empty and the trailing INVITE-like
# octets in the same datagram are noise to be ignored.
TRAILING_OCTETS = frozenset({"dblreq"})

BY_NAME = {m.name: m for m in MESSAGES}


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """Return (start line and header fields, body): the body follows the first CRLFCRLF."""
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def content_lengths(head: bytes) -> list[int]:
    """All Content-Length (or compact ``l``) values, after unfolding continuation lines."""
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    values = []
    for line in unfolded.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in {b"content-length", b"l"}:
            values.append(int(value.strip()))
    return values


def test_there_are_49_messages() -> None:
    assert len(MESSAGES) == 49
    assert all(isinstance(m, TortureMessage) for m in MESSAGES)


def test_names_and_sections_are_unique() -> None:
    assert len({m.name for m in MESSAGES}) == 49
    assert len({m.section for m in MESSAGES}) == 49


def test_names_and_sections_match_the_rfc() -> None:
    assert tuple((m.section, m.name) for m in MESSAGES) == RFC_4475_MESSAGES


def test_every_message_has_a_title_and_an_expectation() -> None:
    for m in MESSAGES:
        assert m.title
        assert m.title == m.title.strip()
        assert m.expected
        assert "\n" not in m.expected


def test_valid_flags_follow_the_rfc() -> None:
    for m in MESSAGES:
        if m.section.startswith("3.1.1."):
            assert m.valid, m.name
        elif m.section.startswith("3.1.2."):
            assert not m.valid, m.name
        else:
            assert m.valid == (m.name not in INVALID_OUTSIDE_3_1_2), m.name


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.name)
def test_bytes_are_the_appendix_a_files(message: TortureMessage) -> None:
    assert hashlib.sha256(message.data).hexdigest() == APPENDIX_A_SHA256[message.name]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.name)
def test_header_section_uses_crlf_only(message: TortureMessage) -> None:
    head, _ = split_message(message.data)
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", head) is None
    if message.name != "mpart01":  # its second body part is binary
        assert re.search(rb"\r(?!\n)|(?<!\r)\n", message.data) is None
    assert message.data.endswith(b"\r\n")


@pytest.mark.parametrize("message", [m for m in MESSAGES if m.valid], ids=lambda m: m.name)
def test_valid_message_body_matches_content_length(message: TortureMessage) -> None:
    head, body = split_message(message.data)
    lengths = content_lengths(head)
    if message.name == "inv2543":
        assert lengths == []  # RFC 2543 style: the body is the rest of the datagram
        return
    assert len(lengths) == 1
    if message.name in TRAILING_OCTETS:
        assert lengths == [0]
        assert body.startswith(b"\r\nINVITE sip:joe@example.com SIP/2.0\r\n")
        return
    assert len(body) == lengths[0]


@pytest.mark.parametrize(
    ("name", "declared", "actual"),
    [("clerr", [9999], 154), ("ncl", [-999], 152), ("mcl01", [13, 5], 67)],
)
def test_wrong_content_lengths_are_kept(name: str, declared: list[int], actual: int) -> None:
    head, body = split_message(BY_NAME[name].data)
    assert content_lengths(head) == declared
    assert len(body) == actual


def test_exact_spacing_and_control_bytes() -> None:
    assert BY_NAME["intmeth"].data.count(b"\x07") == 1
    assert b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:' in BY_NAME["intmeth"].data
    assert BY_NAME["noreason"].data.startswith(b"SIP/2.0 100 \r\n")
    assert BY_NAME["trws"].data.startswith(b"OPTIONS sip:remote-target@example.com SIP/2.0  \r\n")
    assert BY_NAME["lwsstart"].data.startswith(b"INVITE  sip:user@example.com  SIP/2.0\r\n")
    assert BY_NAME["lwsruri"].data.startswith(b"INVITE sip:user@example.com; lr SIP/2.0\r\n")
    assert BY_NAME["ltgtruri"].data.startswith(b"INVITE <sip:user@example.com> SIP/2.0\r\n")
    assert b"\r\nFrom: caller<sip:caller@example.com>;tag=323\r\n" in BY_NAME["lwsdisp"].data
    assert b"\r\nTo: sip:null-%00-null@example.com\r\n" in BY_NAME["escnull"].data
    assert b"\r\nExpires: 1" + b"0" * 100 + b"\r\n" in BY_NAME["scalar02"].data
    assert len(BY_NAME["longreq"].data) == 3515
    assert b"\x00" in split_message(BY_NAME["mpart01"].data)[1]
