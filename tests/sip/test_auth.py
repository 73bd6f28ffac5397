"""Digest authentication (RFC 7616, RFC 3261 §22)."""

from __future__ import annotations

from appliance.sip.auth import (
    Challenge,
    DigestClient,
    DigestServer,
    best_challenge,
    parse_auth_params,
    response_digest,
)

# RFC 7616 §3.9.1.
VECTOR = {
    "username": "Mufasa", "realm": "http-auth@example.org", "password": "Circle of Life",
    "method": "GET", "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth", "nc": "00000001", "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}  # fmt: skip


def test_rfc7616_example() -> None:
    assert response_digest(algorithm="MD5", **VECTOR) == "8ca523f5e9506fed4657c9700eebdbec"
    assert response_digest(algorithm="SHA-256", **VECTOR) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_rfc2069_compatibility_without_qop() -> None:
    digest = response_digest(
        algorithm="MD5",
        username="u",
        realm="r",
        password="p",
        method="REGISTER",
        uri="sip:r",
        nonce="n",
        qop=None,
    )
    assert len(digest) == 32


def test_client_takes_the_first_challenge_it_supports() -> None:
    values = [
        'Basic realm="r"',
        'Digest realm="r", nonce="n0", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth,auth-int"',
        'Digest realm="r", nonce="n1", algorithm=MD5, qop="auth"',
    ]
    best = best_challenge(values, proxy=False)
    assert best is not None and (best.algorithm, best.nonce, best.qop) == ("SHA-256", "n2", "auth")
    first = DigestServer("r", algorithms=("MD5", "SHA-256")).challenges(0)
    assert "algorithm=MD5" in first[0] and "algorithm=SHA-256" in first[1]
    assert Challenge.parse('Digest realm="r", nonce="n", qop="auth-int"', proxy=False) is None
    assert Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-512', proxy=False) is None
    assert parse_auth_params('Digest a="x, y", b=z') == ("Digest", {"a": "x, y", "b": "z"})


def test_client_and_server_agree_and_replays_fail() -> None:
    server = DigestServer("box", nonce_lifetime=60)
    users = {"1001": "long secret"}.get
    for value in server.challenges(now=10):
        challenge = Challenge.parse(value, proxy=False)
        assert challenge is not None
        client = DigestClient("1001", "long secret", cnonce=lambda: "c0ffee")
        _, header = client.authorization(challenge, "REGISTER", "sip:box")
        verdict = server.verify(header, "REGISTER", users, now=11)
        assert verdict.ok and verdict.username == "1001"
        replay = server.verify(header, "REGISTER", users, now=12)
        assert not replay.ok and replay.reason == "replayed nonce count"
        _, again = client.authorization(challenge, "REGISTER", "sip:box")  # nc=2
        assert server.verify(again, "REGISTER", users, now=13).ok


def test_server_refusals() -> None:
    server = DigestServer("box", nonce_lifetime=60)
    users = {"1001": "long secret"}.get
    challenge = Challenge.parse(server.challenges(now=0)[0], proxy=False)
    assert challenge is not None
    _, wrong = DigestClient("1001", "wrong secret").authorization(challenge, "REGISTER", "sip:box")
    assert server.verify(wrong, "REGISTER", users, now=1).reason == "wrong password"
    _, unknown = DigestClient("9999", "x").authorization(challenge, "REGISTER", "sip:box")
    assert server.verify(unknown, "REGISTER", users, now=1).reason == "unknown user"
    _, good = DigestClient("1001", "long secret").authorization(challenge, "REGISTER", "sip:box")
    stale = server.verify(good, "REGISTER", users, now=61)
    assert not stale.ok and stale.stale
    other = DigestServer("box")  # another secret: its nonces are not ours
    assert other.verify(good, "REGISTER", users, now=1).reason == "nonce not issued here"
    assert server.verify("Digest garbage", "REGISTER", users, now=1).reason == (
        "malformed credentials"
    )
    assert "stale=true" in server.challenges(now=0, stale=True)[0]
