"""Conformance adapter: runs this verifier over a vectors file with the clock
at the file's `now` and prints one JSON line per case:
{"name", "valid", "sub"?, "error"?}. origin/conformance/check compares."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wx_identity import IdentityError, Verifier  # noqa: E402

with open(sys.argv[1], encoding="utf-8") as f:
    v = json.load(f)
verifier = Verifier(
    audience=v["audience"],
    issuer=v["issuer"],
    fetch_jwks=lambda: v["jwks"],
    now=lambda: v["now"],
)
for c in v["cases"]:
    # A case with "appid": a verifier that requires that appid (same cache).
    verifier.appid = c.get("appid")
    try:
        identity = verifier.verify(c["token"])
        print(json.dumps({"name": c["name"], "valid": True, "sub": identity.openid}))
    except IdentityError as e:
        print(json.dumps({"name": c["name"], "valid": False, "error": str(e)}))
for c in v.get("jwks_urls", []):
    try:
        Verifier(audience=v["audience"], jwks_url=c["url"])
        print(json.dumps({"name": c["name"], "valid": True}))
    except ValueError as e:
        print(json.dumps({"name": c["name"], "valid": False, "error": str(e)}))
