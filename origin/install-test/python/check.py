"""Runs in a fresh venv where wx-edge-origin[fastapi] was pip-installed:
the conformance vectors through the installed verifier, the FastAPI
dependency, and the service client's module."""

import json
import sys

import wx_identity
import wx_identity_fastapi
from fastapi import HTTPException
from starlette.requests import Request
from wx_edge_service import NoLiveSessionError, ServiceClient, ServiceError
from wx_identity import IdentityError, Verifier

for m in (wx_identity, wx_identity_fastapi):
    assert "site-packages" in m.__file__, f"{m.__name__} imported from {m.__file__}, not the installed package"

with open(sys.argv[1], encoding="utf-8") as f:
    v = json.load(f)
verifier = Verifier(audience=v["audience"], fetch_jwks=lambda: v["jwks"], now=lambda: v["now"])
passed = 0
for c in v["cases"]:
    verifier.appid = c.get("appid")
    try:
        sub = verifier.verify(c["token"]).openid
        assert c["valid"] and sub == c["sub"], c["name"]
    except IdentityError:
        assert not c["valid"], c["name"]
    passed += 1

verifier.appid = None
worker = next(c for c in v["cases"] if c["name"] == "worker assertion, as captured from the worker")
dep = wx_identity_fastapi.WxIdentity(verifier)


def request(*headers):
    return Request({"type": "http", "method": "GET", "path": "/api/me", "headers": [(b"x-wx-identity", h.encode()) for h in headers]})


assert dep(request(worker["token"])).openid == worker["sub"]
for bad in [(), (worker["token"], worker["token"])]:
    try:
        dep(request(*bad))
        raise AssertionError("the FastAPI dependency let a bad request through")
    except HTTPException as e:
        assert e.status_code == 401, e.status_code
assert issubclass(NoLiveSessionError, ServiceError)
try:
    ServiceClient("http://edge.example.com", token="t")
    raise AssertionError("plain http to a remote worker accepted")
except ValueError:
    pass
print(f"python package: {passed}/{len(v['cases'])} conformance cases through wx-edge-origin, FastAPI dependency works")
