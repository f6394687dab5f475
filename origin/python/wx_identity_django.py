"""Django middleware for wx-edge's X-WX-Identity.

settings.py:

    MIDDLEWARE = [
        ...,
        "wx_identity_django.WxIdentityMiddleware",
    ]
    WX_IDENTITY = {
        "jwks_url": "https://edge.example.com/.well-known/jwks.json",
        "audience": "https://api.example.com",     # your origin, as in the worker's ORIGIN_URL
        # "optional": True,     requests without the header pass with request.wx_identity = None
        # "exempt_paths": ["/health"],   path prefixes not checked at all
    }

Views read request.wx_identity (a wx_identity.Identity: openid, unionid,
appid, phone, phone_country), never the plain X-WX-* headers. A missing or
invalid assertion gets 401 {"error": "missing_identity" | "invalid_identity"},
503 {"error": "jwks_unavailable"} while the worker's JWKS cannot be fetched.
"""

from django.conf import settings
from django.http import JsonResponse

from wx_identity import IdentityError, Verifier


class WxIdentityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        conf = dict(getattr(settings, "WX_IDENTITY", {}))
        self.verifier = conf.pop("verifier", None) or Verifier(
            audience=conf["audience"],
            jwks_url=conf["jwks_url"],
            **{k: conf[k] for k in ("issuer", "leeway", "min_refetch_interval", "max_age", "appid", "max_lifetime") if k in conf},
        )
        self.optional = bool(conf.get("optional", False))
        self.exempt = tuple(conf.get("exempt_paths", ()))

    def __call__(self, request):
        request.wx_identity = None
        if self.exempt and request.path.startswith(self.exempt):
            return self.get_response(request)
        # WSGI joins repeated headers with ",": two assertions are refused.
        value = request.headers.get("X-WX-Identity")
        if not (self.optional and not value):
            try:
                request.wx_identity = self.verifier.verify(value)
            except IdentityError as e:
                if e.code == "jwks_unavailable":
                    return JsonResponse({"error": e.code, "message": "identity keys are unavailable; try again"}, status=503)
                return JsonResponse({"error": e.code, "message": "this API is reachable only through wx-edge"}, status=401)
        return self.get_response(request)
