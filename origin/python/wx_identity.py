"""Verifies wx-edge's X-WX-Identity assertion with PyJWT (+ cryptography).

    pip install "PyJWT[crypto]>=2.8"   # or: PyJWT cryptography

    from wx_identity import Verifier
    wx = Verifier(jwks_url="https://edge.example.com/.well-known/jwks.json",
                  audience="https://api.example.com",   # your ORIGIN_URL's origin
                  appid="wx1111111111111111")           # optional: only this mini-program
    identity = wx.verify(request.headers.get("X-WX-Identity"))
    identity.openid, identity.unionid, identity.appid, identity.phone

Rules (the same in every verifier in origin/, pinned by origin/conformance):
compact JWS of base64url segments; header alg exactly "EdDSA" (never taken
from the token otherwise), typ exactly "wx-identity+jwt", a kid, no crit;
the key is the JWKS entry with that kid, and only an OKP/Ed25519 one; iss
"wx-edge", aud a string equal to `audience`, sub a non-empty string, exp and
iat numbers with now < exp + leeway and iat <= now + leeway (nbf likewise if
present), exp - iat at most max_lifetime (the worker's 2 minutes), appid
equal to `appid` when given. The JWKS URL must be https (loopback
excepted). The JWKS is cached; an unknown kid (a rotation) or a cache older
than max_age refetches it, at most once per min_refetch_interval seconds.

Thread-safe; verify() is synchronous (it may fetch the JWKS with urllib), so
in async frameworks call it from a thread (FastAPI does, for a plain `def`
dependency).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import math
import re
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ISSUER = "wx-edge"
TYP = "wx-identity+jwt"
HEADER = "X-WX-Identity"

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_X = re.compile(r"[A-Za-z0-9_-]{43}")
_log = logging.getLogger("wx_identity")


class IdentityError(Exception):
    """code: "missing_identity", "invalid_identity" or "jwks_unavailable"."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _invalid(why: str) -> IdentityError:
    return IdentityError("invalid_identity", f"X-WX-Identity rejected: {why}")


@dataclass(frozen=True)
class Identity:
    openid: str
    unionid: Optional[str]
    appid: Optional[str]
    phone: Optional[str]  # purePhoneNumber, when bound
    phone_country: Optional[str]
    jti: Optional[str]
    expires_at: float  # Unix seconds


def http_jwks_fetcher(url: str, timeout: float = 5.0) -> Callable[[], Any]:
    check_jwks_url(url)

    def fetch() -> Any:
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 (an https URL you configure)
            return json.loads(res.read())

    return fetch


def _b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def ed25519_keys(jwks: Any) -> Dict[str, Ed25519PublicKey]:
    """The usable keys of a JWKS: OKP/Ed25519 public keys with a kid, by kid."""
    keys: Dict[str, Ed25519PublicKey] = {}
    entries = jwks.get("keys") if isinstance(jwks, dict) else None
    for k in entries if isinstance(entries, list) else []:
        if not isinstance(k, dict) or k.get("kty") != "OKP" or k.get("crv") != "Ed25519":
            continue
        kid, x = k.get("kid"), k.get("x")
        if not isinstance(kid, str) or not kid or not isinstance(x, str) or not _X.fullmatch(x):
            continue
        if k.get("use", "sig") != "sig" or k.get("alg", "EdDSA") != "EdDSA":
            continue
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(_b64url(x))
        except (ValueError, binascii.Error):
            continue  # an unusable entry is skipped, not fatal for the others
    return keys


class JwksCache:
    """The JWKS, cached. get(kid) refetches when the kid is unknown or the
    cache is older than max_age, but never more than once per
    min_refetch_interval seconds (failed attempts count), so forged kids
    cannot hammer the worker. A failed refetch keeps the keys already known.

    No lock is held while fetching: one fetch is in flight at a time; a
    caller whose kid is cached gets it at once (even during a fetch), and only
    a caller that needs a kid the cache lacks waits for the fetch in flight."""

    def __init__(
        self,
        fetch_jwks: Callable[[], Any],
        now: Callable[[], float] = time.time,
        min_refetch_interval: float = 30,
        max_age: float = 300,
    ):
        self._fetch = fetch_jwks
        self._now = now
        self.min_refetch_interval = min_refetch_interval
        self.max_age = max_age
        self._keys: Dict[str, Ed25519PublicKey] = {}
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._ever_fetched = False
        self._lock = threading.Lock()  # guards the fields above, never held while fetching
        self._inflight: Optional[threading.Event] = None  # set when the fetch under way ends

    def _lookup(self, kid: str) -> Optional[Ed25519PublicKey]:
        with self._lock:
            if not self._ever_fetched:
                raise IdentityError("jwks_unavailable", "the JWKS could not be fetched")
            return self._keys.get(kid)

    def get(self, kid: str) -> Optional[Ed25519PublicKey]:
        with self._lock:
            t = self._now()
            known = self._keys.get(kid)
            if known is not None and t - self._fetched_at < self.max_age:
                return known
            wait = self._inflight
            if wait is not None and known is not None:
                return known  # a refetch for age is under way: the cached key stands meanwhile
            fetch_now = wait is None and t - self._attempted_at >= self.min_refetch_interval
            if fetch_now:
                self._attempted_at = t
                done = self._inflight = threading.Event()
        if wait is not None:
            wait.wait()  # an unknown kid: wait for that one fetch, not for a lock
        elif fetch_now:
            keys = None
            try:
                keys = ed25519_keys(self._fetch())  # without the lock
            except Exception as e:  # noqa: BLE001 (any fetch failure keeps the old keys)
                _log.warning("JWKS fetch failed: %s", e)
            finally:
                with self._lock:
                    if keys is not None:
                        self._keys, self._fetched_at, self._ever_fetched = keys, self._now(), True
                    self._inflight = None
                    done.set()
        return self._lookup(kid)


# The longest exp - iat accepted by default: the worker's assertions live 2
# minutes (IDENTITY_TTL in src/token/identity.rs).
MAX_LIFETIME = 120

_LOOPBACK_NAMES = ("localhost",)


def check_jwks_url(url: str) -> None:
    """Raises ValueError unless url is https://, or http:// to a loopback host
    (127.0.0.0/8, localhost, [::1]: development and tests). Over plain http
    anyone on the path could hand the verifier their own key."""
    try:
        u = urllib.parse.urlsplit(url)
        host = u.hostname or ""
    except ValueError:
        raise ValueError(f"the JWKS URL {url!r} is not an absolute URL") from None
    if not host:
        raise ValueError(f"the JWKS URL {url!r} is not an absolute URL")
    if u.scheme == "https":
        return
    if u.scheme == "http":
        if host.lower() in _LOOPBACK_NAMES:
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
    raise ValueError(f"the JWKS URL must be https:// (plain http only for a loopback host), got {url!r}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


class Verifier:
    def __init__(
        self,
        audience: str,
        jwks_url: Optional[str] = None,
        fetch_jwks: Optional[Callable[[], Any]] = None,
        issuer: str = ISSUER,
        leeway: float = 30,
        now: Callable[[], float] = time.time,
        min_refetch_interval: float = 30,
        max_age: float = 300,
        appid: Optional[str] = None,
        max_lifetime: float = MAX_LIFETIME,
    ):
        if not audience:
            raise ValueError("audience is required (your origin, e.g. https://api.example.com)")
        if fetch_jwks is None:
            if not jwks_url:
                raise ValueError("jwks_url (or fetch_jwks) is required")
            fetch_jwks = http_jwks_fetcher(jwks_url)
        self.audience, self.issuer, self.leeway, self._now = audience, issuer, leeway, now
        self.appid, self.max_lifetime = appid, max_lifetime
        self.cache = JwksCache(fetch_jwks, now, min_refetch_interval, max_age)

    def verify(self, token: Optional[str]) -> Identity:
        if token is None or token == "":
            raise IdentityError("missing_identity", "X-WX-Identity is missing")
        if not isinstance(token, str) or not _COMPACT.fullmatch(token):
            raise _invalid("not a compact JWS")
        try:
            header = json.loads(_b64url(token.split(".", 1)[0]))
        except (ValueError, binascii.Error):
            raise _invalid("unreadable header") from None
        if not isinstance(header, dict):
            raise _invalid("unreadable header")
        if header.get("alg") != "EdDSA":
            raise _invalid("alg must be EdDSA")
        if header.get("typ") != TYP:
            raise _invalid(f"typ must be {TYP}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("no kid")
        if "crit" in header:
            raise _invalid("crit is not supported")
        key = self.cache.get(kid)
        if key is None:
            raise _invalid("kid not in the JWKS")
        try:
            # Signature, alg, iss and aud by PyJWT; the times below, against
            # the injected clock (PyJWT reads the system clock).
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["iss", "aud", "sub", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as e:
            raise _invalid(str(e)) from None
        t = self._now()
        if not isinstance(claims.get("aud"), str):
            raise _invalid("aud must be a string")
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf", None)
        if not _is_num(exp) or not _is_num(iat) or (nbf is not None and not _is_num(nbf)):
            raise _invalid("exp, iat and nbf must be numbers")
        if t >= exp + self.leeway:
            raise _invalid("expired")
        if iat > t + self.leeway:
            raise _invalid("iat is in the future")
        if nbf is not None and nbf > t + self.leeway:
            raise _invalid("not valid yet (nbf)")
        if exp - iat > self.max_lifetime:
            raise _invalid(f"lifetime (exp - iat) longer than {self.max_lifetime} s")
        if self.appid is not None and claims.get("appid") != self.appid:
            raise _invalid("wrong appid")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _invalid("sub must be the openid")
        return Identity(
            openid=sub,
            unionid=_opt_str(claims.get("unionid")),
            appid=_opt_str(claims.get("appid")),
            phone=_opt_str(claims.get("phone")),
            phone_country=_opt_str(claims.get("phone_country")),
            jti=_opt_str(claims.get("jti")),
            expires_at=exp,
        )
