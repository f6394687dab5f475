"""The Python service client against a running worker (with SERVICE_TOKEN),
as tests/integration/origin-service.test.mjs runs it: every call an origin
makes, printed as one JSON object for the test to check.

    WX_EDGE_URL=http://127.0.0.1:8787 WX_EDGE_SERVICE_TOKEN=... \\
    OPENID=... SIGN_DATA=... ENCRYPTED='{"encryptedData":..,"iv":..}' python service_live.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wx_edge_service import (  # noqa: E402
    NoLiveSessionError,
    RelayRefusedError,
    ServiceAuthError,
    ServiceClient,
)

url, token, openid = os.environ["WX_EDGE_URL"], os.environ["WX_EDGE_SERVICE_TOKEN"], os.environ["OPENID"]
encrypted = json.loads(os.environ["ENCRYPTED"])
edge = ServiceClient(url, token=token)
out = {
    "valid": edge.check_session_key(openid),
    "signed": edge.sign(openid, os.environ["SIGN_DATA"]),
    "decrypted": edge.decrypt(openid, encrypted["encryptedData"], encrypted["iv"]),
}
answer = edge.relay("wxa/msg_sec_check", json={"content": "hello from python", "version": 2, "scene": 1, "openid": openid})
out["relay"] = {"status": answer.status, "json": answer.json()}
png = edge.relay("wxa/getwxacodeunlimit", json={"scene": "py=1"})
out["png"] = {"status": png.status, "content_type": png.content_type, "hex": png.body.hex()}
for name, call, kind in [
    ("no_live_session", lambda: edge.sign("oNobodyLoggedIn00000000000", "x"), NoLiveSessionError),
    ("wrong_token", lambda: ServiceClient(url, token="not-the-token").check_session_key(openid), ServiceAuthError),
    ("refused", lambda: edge.relay("cgi-bin/stable_token", json={}), RelayRefusedError),
]:
    try:
        call()
        out[name] = None
    except kind as e:
        out[name] = {"kind": type(e).__name__, "status": e.status, "error": e.error, "retry_after": e.retry_after}
out["reset"] = edge.reset_session_key(openid)
out["signed_after_reset"] = edge.sign(openid, os.environ["SIGN_DATA"])
print(json.dumps(out))
