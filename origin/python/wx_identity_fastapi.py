"""FastAPI dependency for wx-edge's X-WX-Identity.

    from fastapi import Depends, FastAPI
    from wx_identity import Identity, Verifier
    from wx_identity_fastapi import WxIdentity

    wx = WxIdentity(Verifier(jwks_url="https://edge.example.com/.well-known/jwks.json",
                             audience="https://api.example.com"))
    app = FastAPI()

    @app.get("/api/me")
    def me(identity: Identity = Depends(wx)):
        return {"openid": identity.openid, "phone": identity.phone}

A missing or invalid assertion is HTTPException 401 with detail
{"error": "missing_identity" | "invalid_identity", "message"}; 503
"jwks_unavailable" while the worker's JWKS cannot be fetched.
WxIdentity(verifier, optional=True) returns None for a request without the
header (a PUBLIC_PATHS request without a token) and still refuses a bad one.
__call__ is a plain def: FastAPI runs it in its thread pool, so a JWKS fetch
never blocks the event loop.
"""

from typing import Optional

from fastapi import HTTPException, Request

from wx_identity import HEADER, Identity, IdentityError, Verifier


class WxIdentity:
    def __init__(self, verifier: Verifier, optional: bool = False):
        self.verifier = verifier
        self.optional = optional

    def __call__(self, request: Request) -> Optional[Identity]:
        values = request.headers.getlist(HEADER)
        if self.optional and not values:
            return None
        try:
            # Two headers are refused, not picked from.
            return self.verifier.verify(",".join(values))
        except IdentityError as e:
            if e.code == "jwks_unavailable":
                raise HTTPException(503, {"error": e.code, "message": "identity keys are unavailable; try again"}) from None
            raise HTTPException(401, {"error": e.code, "message": "this API is reachable only through wx-edge"}) from None
