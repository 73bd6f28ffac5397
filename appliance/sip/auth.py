"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Client: answer a ``WWW-Authenticate``/``Proxy-Authenticate`` challenge with SHA-256
or MD5, ``qop=auth`` with a client nonce and nonce count, and a fresh try when the
server says ``stale=true``. Server: stateless nonces (a timestamp signed with a
per-process secret) that expire, and a nonce-count check that refuses replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from appliance.sip.grammar import Scanner, SipSyntaxError, quote

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
PREFERENCE = ("SHA-256", "MD5")  # RFC 8760 §2.4: the order a server lists them in


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """``Digest k=v, k="v"`` into the scheme and lower-cased parameter names (RFC 7235 §2.1)."""
    scan = Scanner(value)
    scheme = scan.token()
    params: dict[str, str] = {}
    while not scan.at_end():
        name = scan.token().lower()
        scan.expect("=")
        params[name] = scan.quoted() if scan.peek() == '"' else scan.token()
        if not scan.accept(","):
            break
    if not scan.at_end():
        raise SipSyntaxError(f"bad authentication parameters in {value[:60]!r}")
    return scheme, params


def response_digest(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str = "",
    cnonce: str = "",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1, with RFC 2069 compatibility when no qop)."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True)
class Challenge:
    """One parsed Digest challenge."""

    realm: str
    nonce: str
    algorithm: str
    qop: str | None
    opaque: str | None
    stale: bool
    proxy: bool

    @classmethod
    def parse(cls, value: str, *, proxy: bool) -> Challenge | None:
        """A usable Digest challenge, or None (other scheme, unknown algorithm, no auth qop)."""
        try:
            scheme, params = parse_auth_params(value)
        except SipSyntaxError:
            return None
        algorithm = params.get("algorithm", "MD5").upper()
        if scheme.lower() != "digest" or algorithm not in ALGORITHMS:
            return None
        if "realm" not in params or "nonce" not in params:
            return None
        qop_options = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
        if qop_options and "auth" not in qop_options:
            return None  # only auth-int offered: bodies are not integrity-protected here
        return cls(
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=algorithm,
            qop="auth" if qop_options else None,
            opaque=params.get("opaque"),
            stale=params.get("stale", "").lower() == "true",
            proxy=proxy,
        )


def best_challenge(values: list[str], *, proxy: bool) -> Challenge | None:
    """The first challenge this client supports: servers list them by preference
    (RFC 7616 §3.7, RFC 8760 §2.4)."""
    for value in values:
        challenge = Challenge.parse(value, proxy=proxy)
        if challenge is not None:
            return challenge
    return None


class DigestClient:
    """Credentials of one account, answering challenges with increasing nonce counts."""

    def __init__(
        self, username: str, password: str, cnonce: Callable[[], str] = lambda: secrets.token_hex(8)
    ) -> None:
        self.username = username
        self.password = password
        self._cnonce = cnonce
        self._counts: dict[str, int] = {}

    def authorization(self, challenge: Challenge, method: str, uri: str) -> tuple[str, str]:
        """Header name and value answering ``challenge`` for ``method`` ``uri``."""
        nc_value = self._counts.get(challenge.nonce, 0) + 1
        self._counts[challenge.nonce] = nc_value
        nc = f"{nc_value:08x}"
        cnonce = self._cnonce()
        digest = response_digest(
            algorithm=challenge.algorithm, username=self.username, realm=challenge.realm,
            password=self.password, method=method, uri=uri, nonce=challenge.nonce,
            qop=challenge.qop, nc=nc, cnonce=cnonce,
        )  # fmt: skip
        parts = [
            f"username={quote(self.username)}", f"realm={quote(challenge.realm)}",
            f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}",
            f"response={quote(digest)}", f"algorithm={challenge.algorithm}",
        ]  # fmt: skip
        if challenge.qop:
            parts += [f"qop={challenge.qop}", f"nc={nc}", f"cnonce={quote(cnonce)}"]
        if challenge.opaque is not None:
            parts.append(f"opaque={quote(challenge.opaque)}")
        name = "Proxy-Authorization" if challenge.proxy else "Authorization"
        return name, "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking credentials."""

    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


class DigestServer:
    """Issues challenges and checks answers for one realm (RFC 7616 §3.3, §3.4)."""

    def __init__(
        self,
        realm: str,
        *,
        nonce_lifetime: float = 300.0,
        secret: bytes | None = None,
        algorithms: tuple[str, ...] = PREFERENCE,
    ) -> None:
        self.realm = realm
        self.algorithms = algorithms
        self.nonce_lifetime = nonce_lifetime
        self._secret = secret or secrets.token_bytes(32)
        self._seen: dict[str, tuple[float, int]] = {}  # nonce -> (issued, highest nc)

    def _nonce(self, now: float) -> str:
        stamp = struct.pack("!d", now) + secrets.token_bytes(8)
        mac = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(stamp + mac).decode().rstrip("=")

    def _issued(self, nonce: str) -> float | None:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        stamp, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(
            mac, hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        ):
            return None
        issued: float = struct.unpack("!d", stamp[:8])[0]
        return issued

    def challenges(self, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm, preferred first (RFC 8760 §2.4)."""
        extra = ", stale=true" if stale else ""
        return [
            f'Digest realm={quote(self.realm)}, nonce="{self._nonce(now)}", algorithm={alg}, '
            f'qop="auth"{extra}'
            for alg in self.algorithms
        ]

    def verify(
        self,
        header: str,
        method: str,
        lookup: Callable[[str], str | None],
        now: float,
    ) -> Verdict:
        """Check an Authorization header; ``lookup`` gives a user's password or None."""
        self._expire(now)
        try:
            scheme, params = parse_auth_params(header)
        except SipSyntaxError:
            return Verdict(False, reason="malformed credentials")
        if scheme.lower() != "digest":
            return Verdict(False, reason="not Digest credentials")
        username = params.get("username")
        nonce = params.get("nonce", "")
        algorithm = params.get("algorithm", "MD5").upper()
        if not username or algorithm not in ALGORITHMS or params.get("realm") != self.realm:
            return Verdict(False, username, reason="wrong realm or algorithm")
        issued = self._issued(nonce)
        if issued is None:
            return Verdict(False, username, reason="nonce not issued here")
        password = lookup(username)
        if password is None:
            return Verdict(False, username, reason="unknown user")
        qop = params.get("qop")
        if qop is not None and qop.lower() != "auth":
            return Verdict(False, username, reason="unsupported qop")
        nc_text = params.get("nc", "")
        expected = response_digest(
            algorithm=algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=params.get("uri", ""), nonce=nonce, qop=qop,
            nc=nc_text, cnonce=params.get("cnonce", ""),
        )  # fmt: skip
        if not hmac.compare_digest(expected, params.get("response", "").lower()):
            return Verdict(False, username, reason="wrong password")
        if now - issued > self.nonce_lifetime:
            return Verdict(False, username, stale=True, reason="nonce expired")
        if qop is None:
            return Verdict(False, username, reason="qop=auth is required")
        try:
            nc = int(nc_text, 16)
        except ValueError:
            return Verdict(False, username, reason="bad nonce count")
        _, highest = self._seen.get(nonce, (issued, 0))
        if nc <= highest:
            return Verdict(False, username, reason="replayed nonce count")
        self._seen[nonce] = (issued, nc)
        return Verdict(True, username)

    def _expire(self, now: float) -> None:
        for nonce in [
            n for n, (issued, _) in self._seen.items() if now - issued > 2 * self.nonce_lifetime
        ]:
            del self._seen[nonce]
