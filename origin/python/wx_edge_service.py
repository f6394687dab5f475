"""Typed calls to wx-edge's service endpoints, for your origin (server to
server, with the worker's SERVICE_TOKEN; never ship it to a mini-program).

    from wx_edge_service import ServiceClient, NoLiveSessionError

    edge = ServiceClient("https://edge.example.com", token=os.environ["WX_EDGE_SERVICE_TOKEN"])
    edge.check_session_key(openid)            # -> True / False
    edge.reset_session_key(openid)            # -> True
    edge.sign(openid, data)                   # -> {"signature": ..., "sig_method": "hmac_sha256"}
    edge.decrypt(openid, encrypted_data, iv)  # -> the decrypted dict (watermark included)
    edge.relay("wxa/msg_sec_check", json={...})   # -> RelayAnswer(status, content_type, body)

A refusal by the worker (its answers carry X-WX-Edge-Error) raises
ServiceError -- or the subclass for its kind -- with `error` (the contract's
code), `status`, `retry_after` (seconds from Retry-After, or None),
`wechat_errcode` and the worker's `message`. What the relay passes on from
WeChat is returned, never raised: WeChat's errcode is yours to read.

Standard library only (urllib); synchronous and thread-safe.
"""

from __future__ import annotations

import ipaddress
import json as _json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union

__all__ = [
    "ServiceClient",
    "ServiceError",
    "NoLiveSessionError",
    "ServiceAuthError",
    "RelayRefusedError",
    "RateLimitedError",
    "UnavailableError",
    "RelayAnswer",
]


class ServiceError(Exception):
    """A refusal by the worker."""

    def __init__(
        self,
        error: str,
        status: int,
        message: str = "",
        retry_after: Optional[int] = None,
        wechat_errcode: Optional[int] = None,
    ) -> None:
        super().__init__(message or f"{status} {error}")
        self.error = error
        self.status = status
        self.message = message or f"{status} {error}"
        self.retry_after = retry_after
        self.wechat_errcode = wechat_errcode


class NoLiveSessionError(ServiceError):
    """404 not_found: the user has no live session (or SERVICE_TOKEN is not set)."""


class ServiceAuthError(ServiceError):
    """401: the service token is missing or wrong."""


class RelayRefusedError(ServiceError):
    """403 relay_refused: the relay does not call this WeChat path."""


class RateLimitedError(ServiceError):
    """429 rate_limited: wait retry_after seconds."""


class UnavailableError(ServiceError):
    """502 / 503: WeChat or the worker's store failed; try again."""


def service_error(error: str, status: int, **fields: Any) -> ServiceError:
    """The typed error for a worker's refusal."""
    if status == 404:
        kind: type = NoLiveSessionError
    elif status == 401:
        kind = ServiceAuthError
    elif error == "relay_refused":
        kind = RelayRefusedError
    elif status == 429:
        kind = RateLimitedError
    elif status in (502, 503):
        kind = UnavailableError
    else:
        kind = ServiceError
    return kind(error, status, **fields)


@dataclass(frozen=True)
class RelayAnswer:
    """WeChat's answer, as the relay passed it on."""

    status: int
    content_type: Optional[str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return _json.loads(self.body)


_OPENID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_RELAY_PATH = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The bearer token must never follow a redirect anywhere else.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _check_base_url(base_url: str) -> str:
    u = urllib.parse.urlsplit(base_url)
    host = u.hostname or ""
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not host or not (u.scheme == "https" or (u.scheme == "http" and loopback)):
        raise ValueError(f"base_url must be https:// (plain http only for a loopback host), got {base_url!r}")
    if u.query or u.fragment:
        raise ValueError("base_url takes no query or fragment")
    return base_url.rstrip("/")


def _check_openid(openid: str) -> str:
    if not isinstance(openid, str) or not _OPENID.fullmatch(openid):
        raise ValueError("openid must be a WeChat openid (letters, digits, - and _)")
    return openid


class ServiceClient:
    """The worker's service endpoints. `base_url`: https://edge.example.com."""

    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.base_url = _check_base_url(base_url)
        if not isinstance(token, str) or not token:
            raise ValueError("token (the worker's SERVICE_TOKEN) is required")
        self._token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:  # never the token
        return f"ServiceClient({self.base_url!r})"

    def _send(
        self, method: str, path: str, body: Optional[bytes] = None, content_type: Optional[str] = None
    ) -> "tuple[int, Mapping[str, str], bytes]":
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None and content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.base_url + path, data=body, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as res:
                status, res_headers, data = res.status, res.headers, res.read()
        except urllib.error.HTTPError as e:
            status, res_headers, data = e.code, e.headers, e.read()
        error = res_headers.get("X-WX-Edge-Error")
        if error is not None:
            parsed: Dict[str, Any] = {}
            try:
                loaded = _json.loads(data)
                if isinstance(loaded, dict):
                    parsed = loaded
            except ValueError:
                pass
            retry = (res_headers.get("Retry-After") or "").strip()
            errcode = parsed.get("wechat_errcode")
            raise service_error(
                error,
                status,
                message=parsed.get("message") if isinstance(parsed.get("message"), str) else "",
                retry_after=int(retry) if retry.isdigit() else None,
                wechat_errcode=errcode if isinstance(errcode, int) else None,
            )
        return status, res_headers, data

    def _own(self, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        # An empty body still says Content-Length: 0.
        payload = b"" if body is None else _json.dumps(body).encode("utf-8")
        status, _, data = self._send("POST", path, payload, "application/json" if body is not None else None)
        if status != 200:
            raise ServiceError("unexpected_response", status, f"the worker answered {status} without X-WX-Edge-Error")
        answer = _json.loads(data)
        if not isinstance(answer, dict):
            raise ServiceError("unexpected_response", status, "the worker's answer is not a JSON object")
        return answer

    @staticmethod
    def _user(openid: str, rest: str) -> str:
        return f"/auth/service/users/{_check_openid(openid)}/{rest}"

    def check_session_key(self, openid: str) -> bool:
        """WeChat checksession with the user's newest live session key."""
        return self._own(self._user(openid, "session-key/check")).get("valid") is True

    def reset_session_key(self, openid: str) -> bool:
        """WeChat resetusersessionkey; the new key stays in the worker."""
        return self._own(self._user(openid, "session-key/reset")).get("reset") is True

    def sign(self, openid: str, data: str) -> Dict[str, str]:
        """WeChat's login-state signature of `data` (hex HMAC-SHA256 keyed with the session_key)."""
        if not isinstance(data, str):
            raise TypeError("data must be a str")
        return self._own(self._user(openid, "sign"), {"data": data})  # type: ignore[return-value]

    def decrypt(self, openid: str, encrypted_data: str, iv: str) -> Dict[str, Any]:
        """Decrypts wx open data with the user's live session keys, newest first."""
        if not isinstance(encrypted_data, str) or not isinstance(iv, str):
            raise TypeError("encrypted_data and iv must be str")
        return self._own(self._user(openid, "decrypt"), {"encryptedData": encrypted_data, "iv": iv})["data"]

    def relay(
        self,
        path: str,
        method: str = "POST",
        query: Optional[Mapping[str, str]] = None,
        json: Any = None,
        body: Optional[Union[bytes, str]] = None,
        content_type: Optional[str] = None,
    ) -> RelayAnswer:
        """Calls WX_API_BASE/<path> through the worker, which adds its access_token."""
        if (
            not isinstance(path, str)
            or not _RELAY_PATH.fullmatch(path)
            or any(s in (".", "..") for s in path.split("/"))
        ):
            raise ValueError('path must be a WeChat API path such as "wxa/msg_sec_check" (no leading /, no . or ..)')
        qs = "?" + urllib.parse.urlencode(query) if query else ""
        payload: Optional[bytes] = None
        if json is not None:
            payload, content_type = _json.dumps(json).encode("utf-8"), "application/json"
        elif body is not None:
            payload = body.encode("utf-8") if isinstance(body, str) else body
        status, headers, data = self._send(method, f"/auth/service/wechat/{path}{qs}", payload, content_type)
        return RelayAnswer(status, headers.get("Content-Type"), data)
