"""The Python verifier: the conformance vectors, the JWKS cache's refetch
floor with a fake fetcher and clock, and the FastAPI and Django adapters.

    origin/python/.venv/bin/python -m unittest discover -s origin/python -v
"""

import base64
import importlib.util
import json
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wx_identity import Identity, IdentityError, JwksCache, Verifier  # noqa: E402

with open(os.path.join(HERE, "..", "conformance", "vectors.json"), encoding="utf-8") as f:
    V = json.load(f)


def case(name):
    for c in V["cases"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def part(token, i):
    s = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


WORKER = case("worker assertion, as captured from the worker")
ROTATED = case("signed by the rotated-in key (second key in the JWKS)")
WORKER_KID = part(WORKER["token"], 0)["kid"]
ROTATED_KID = part(ROTATED["token"], 0)["kid"]


def jwks_with(*kids):
    return {"keys": [k for k in V["jwks"]["keys"] if k["kid"] in kids]}


def verifier_at(now, fetch=lambda: V["jwks"], **kw):
    return Verifier(audience=V["audience"], issuer=V["issuer"], fetch_jwks=fetch, now=lambda: now, **kw)


class FakeFetcher:
    """A fake JWKS endpoint: counts fetches, serves `doc`, or fails."""

    def __init__(self, doc):
        self.doc, self.calls, self.fail, self.delay = doc, 0, False, 0

    def __call__(self):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise OSError("worker unreachable")
        return self.doc


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


class ConformanceTest(unittest.TestCase):
    def test_every_case_gets_its_verdict_and_sub(self):
        v = verifier_at(V["now"])
        for c in V["cases"]:
            with self.subTest(c["name"]):
                v.appid = c.get("appid")  # a case with "appid": the verifier requires it
                try:
                    got = (True, v.verify(c["token"]).openid)
                except IdentityError:
                    got = (False, None)
                self.assertEqual(got[0], c["valid"])
                if c["valid"]:
                    self.assertEqual(got[1], c["sub"])

    def test_jwks_urls_https_or_loopback(self):
        self.assertTrue(V["jwks_urls"])
        for c in V["jwks_urls"]:
            with self.subTest(c["name"]):
                if c["valid"]:
                    Verifier(audience=V["audience"], jwks_url=c["url"])
                else:
                    with self.assertRaisesRegex(ValueError, "https|absolute"):
                        Verifier(audience=V["audience"], jwks_url=c["url"])

    def test_lifetime_cap_and_appid_pin(self):
        long = case("lifetime 121 s: longer than the worker's 2 minutes")["token"]
        with self.assertRaisesRegex(IdentityError, "lifetime"):
            verifier_at(V["now"]).verify(long)
        verifier_at(V["now"], max_lifetime=300).verify(long)  # an origin may allow more, explicitly
        other = case("appid pinned: another mini-program's assertion")["token"]
        verifier_at(V["now"]).verify(other)  # not pinned
        self.assertEqual(verifier_at(V["now"], appid="wx2222222222222222").verify(other).appid, "wx2222222222222222")
        with self.assertRaisesRegex(IdentityError, "appid"):
            verifier_at(V["now"], appid="wx2222222222222222").verify(WORKER["token"])

    def test_the_worker_assertion_becomes_a_typed_identity(self):
        claims = part(WORKER["token"], 1)
        self.assertEqual(
            verifier_at(V["now"]).verify(WORKER["token"]),
            Identity(
                openid=claims["sub"],
                unionid=claims["unionid"],
                appid=claims["appid"],
                phone="13800138000",
                phone_country="86",
                jti=claims["jti"],
                expires_at=claims["exp"],
            ),
        )

    def test_the_injected_clock_decides_expiry(self):
        exp = part(WORKER["token"], 1)["exp"]
        verifier_at(exp + 29).verify(WORKER["token"])
        with self.assertRaises(IdentityError):
            verifier_at(exp + 30).verify(WORKER["token"])
        with self.assertRaises(IdentityError):
            verifier_at(exp + 10, leeway=5).verify(WORKER["token"])


class JwksCacheTest(unittest.TestCase):
    def test_refetch_floor_and_rotation(self):
        clock, fetch = Clock(1000), FakeFetcher(jwks_with(WORKER_KID))
        cache = JwksCache(fetch, clock)
        self.assertIsNotNone(cache.get(WORKER_KID))
        self.assertIsNotNone(cache.get(WORKER_KID))
        self.assertEqual(fetch.calls, 1)

        clock.t += 10  # forged kids within the floor: no fetch
        self.assertIsNone(cache.get("forged-1"))
        self.assertIsNone(cache.get("forged-2"))
        self.assertEqual(fetch.calls, 1)

        clock.t += 20  # 30 s after the last fetch: one refetch, then the floor again
        self.assertIsNone(cache.get("forged-3"))
        self.assertIsNone(cache.get("forged-4"))
        self.assertEqual(fetch.calls, 2)

        fetch.doc = jwks_with(ROTATED_KID, WORKER_KID)  # a rotation
        clock.t += 29
        self.assertIsNone(cache.get(ROTATED_KID), "still within the floor")
        clock.t += 1
        self.assertIsNotNone(cache.get(ROTATED_KID))
        self.assertIsNotNone(cache.get(WORKER_KID))
        self.assertEqual(fetch.calls, 3)

    def test_max_age_failed_refresh_and_retired_key(self):
        clock, fetch = Clock(0), FakeFetcher(jwks_with(WORKER_KID))
        cache = JwksCache(fetch, clock, max_age=600)
        cache.get(WORKER_KID)
        clock.t = 599
        cache.get(WORKER_KID)
        self.assertEqual(fetch.calls, 1)
        clock.t, fetch.fail = 600, True
        with self.assertLogs("wx_identity", "WARNING"):
            self.assertIsNotNone(cache.get(WORKER_KID), "a failed refresh keeps the known key")
        self.assertEqual(fetch.calls, 2)
        clock.t, fetch.fail, fetch.doc = 630, False, jwks_with(ROTATED_KID)
        self.assertIsNone(cache.get(WORKER_KID), "the retired key is gone")
        self.assertEqual(fetch.calls, 3)

    def test_never_fetched_is_jwks_unavailable_and_failures_respect_the_floor(self):
        clock, fetch = Clock(0), FakeFetcher(V["jwks"])
        fetch.fail = True
        cache = JwksCache(fetch, clock)
        for t in (0, 29):
            clock.t = t
            with self.assertLogs("wx_identity", "WARNING") if t == 0 else _nothing():
                with self.assertRaises(IdentityError) as e:
                    cache.get(WORKER_KID)
            self.assertEqual(e.exception.code, "jwks_unavailable")
        self.assertEqual(fetch.calls, 1)
        clock.t, fetch.fail = 30, False
        self.assertIsNotNone(cache.get(WORKER_KID))

    def test_concurrent_unknown_kids_share_one_fetch(self):
        fetch = FakeFetcher(jwks_with(WORKER_KID))
        fetch.delay = 0.05
        cache = JwksCache(fetch, Clock(0))
        got = []
        threads = [threading.Thread(target=lambda: got.append(cache.get(WORKER_KID))) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(got), 5)
        self.assertTrue(all(got))
        self.assertEqual(fetch.calls, 1)

    def test_a_slow_fetch_does_not_stall_a_cached_kid(self):
        release, started = threading.Event(), threading.Event()
        calls = []

        def fetch():
            calls.append(1)
            if len(calls) == 1:
                return jwks_with(WORKER_KID)
            started.set()  # the refetch hangs: a slow JWKS server
            release.wait(10)
            return jwks_with(WORKER_KID, ROTATED_KID)

        clock = Clock(V["now"])
        v = Verifier(audience=V["audience"], fetch_jwks=fetch, now=clock)
        results = {}

        def run(name, token):
            try:
                results[name] = v.verify(token).openid
            except IdentityError as e:
                results[name] = e

        v.verify(WORKER["token"])  # the first fetch, fast
        clock.t += 30
        rotated = threading.Thread(target=run, args=("rotated", ROTATED["token"]))
        second = threading.Thread(target=run, args=("second", ROTATED["token"]))
        try:
            rotated.start()  # an unknown kid: the refetch starts, and hangs
            self.assertTrue(started.wait(5), "the refetch never started")
            cached = threading.Thread(target=run, args=("cached", WORKER["token"]))
            cached.start()
            cached.join(2)
            self.assertFalse(cached.is_alive(), "a verification with a cached kid waited for the JWKS fetch")
            self.assertEqual(results["cached"], WORKER["sub"])
            second.start()  # another unknown kid waits for that same fetch
            second.join(0.1)
            self.assertTrue(second.is_alive(), "an unknown kid did not wait for the fetch in flight")
        finally:
            release.set()
        rotated.join(5)
        second.join(5)
        self.assertEqual(results["rotated"], ROTATED["sub"])
        self.assertEqual(results["second"], ROTATED["sub"])
        self.assertEqual(len(calls), 2)

    def test_rotation_through_verify(self):
        clock, fetch = Clock(V["now"]), FakeFetcher(jwks_with(WORKER_KID))
        v = Verifier(audience=V["audience"], fetch_jwks=fetch, now=clock)
        v.verify(WORKER["token"])
        with self.assertRaises(IdentityError):
            v.verify(ROTATED["token"])
        fetch.doc = jwks_with(ROTATED_KID, WORKER_KID)
        with self.assertRaises(IdentityError):
            v.verify(ROTATED["token"])  # within the floor
        clock.t += 30
        self.assertEqual(v.verify(ROTATED["token"]).openid, ROTATED["sub"])
        self.assertEqual(fetch.calls, 2)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


TAMPERED = case("tampered payload: another openid, original signature")


@unittest.skipUnless(installed("fastapi", "httpx2"), "FastAPI/httpx2 not installed (origin/python/requirements.txt)")
class FastAPITest(unittest.TestCase):
    def client(self, **kw):
        from fastapi import Depends, FastAPI
        from fastapi.testclient import TestClient

        from wx_identity_fastapi import WxIdentity

        wx = WxIdentity(kw.pop("verifier", None) or verifier_at(V["now"]), **kw)
        app = FastAPI()

        @app.get("/api/me")
        def me(identity=Depends(wx)):
            return {"openid": identity and identity.openid, "phone": identity and identity.phone}

        return TestClient(app)

    def test_dependency(self):
        c = self.client()
        r = c.get("/api/me", headers={"X-WX-Identity": WORKER["token"]})
        self.assertEqual((r.status_code, r.json()), (200, {"openid": WORKER["sub"], "phone": "13800138000"}))
        r = c.get("/api/me", headers={"X-WX-OpenID": WORKER["sub"]})
        self.assertEqual((r.status_code, r.json()["detail"]["error"]), (401, "missing_identity"))
        r = c.get("/api/me", headers={"X-WX-Identity": TAMPERED["token"]})
        self.assertEqual((r.status_code, r.json()["detail"]["error"]), (401, "invalid_identity"))
        r = c.get("/api/me", headers=[("X-WX-Identity", WORKER["token"]), ("X-WX-Identity", WORKER["token"])])
        self.assertEqual(r.status_code, 401, "two assertions are refused")

    def test_optional_and_unavailable(self):
        c = self.client(optional=True)
        self.assertEqual(c.get("/api/me").json(), {"openid": None, "phone": None})
        self.assertEqual(c.get("/api/me", headers={"X-WX-Identity": TAMPERED["token"]}).status_code, 401)

        def down():
            raise OSError("down")

        with self.assertLogs("wx_identity", "WARNING"):
            r = self.client(verifier=verifier_at(V["now"], fetch=down)).get("/api/me", headers={"X-WX-Identity": WORKER["token"]})
        self.assertEqual((r.status_code, r.json()["detail"]["error"]), (503, "jwks_unavailable"))


@unittest.skipUnless(installed("django"), "Django not installed (origin/python/requirements.txt)")
class DjangoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import django
        from django.conf import settings

        if not settings.configured:
            settings.configure(ALLOWED_HOSTS=["testserver"], USE_TZ=True)
            django.setup()

    def middleware(self, **conf):
        from django.http import HttpResponse
        from django.test import override_settings

        from wx_identity_django import WxIdentityMiddleware

        conf.setdefault("verifier", verifier_at(V["now"]))
        with override_settings(WX_IDENTITY=conf):
            return WxIdentityMiddleware(lambda req: HttpResponse(req.wx_identity.openid if req.wx_identity else "anonymous"))

    def get(self, mw, path="/api/me", **headers):
        from django.test import RequestFactory

        return mw(RequestFactory().get(path, headers=headers))

    def test_middleware(self):
        mw = self.middleware()
        r = self.get(mw, X_WX_Identity=WORKER["token"])
        self.assertEqual((r.status_code, r.content.decode()), (200, WORKER["sub"]))
        r = self.get(mw, X_WX_OpenID=WORKER["sub"])
        self.assertEqual((r.status_code, json.loads(r.content)["error"]), (401, "missing_identity"))
        r = self.get(mw, X_WX_Identity=TAMPERED["token"])
        self.assertEqual((r.status_code, json.loads(r.content)["error"]), (401, "invalid_identity"))

    def test_optional_exempt_and_unavailable(self):
        self.assertEqual(self.get(self.middleware(optional=True)).content, b"anonymous")
        self.assertEqual(self.get(self.middleware(optional=True), X_WX_Identity=TAMPERED["token"]).status_code, 401)
        mw = self.middleware(exempt_paths=["/health"])
        self.assertEqual(self.get(mw, "/health").status_code, 200)
        self.assertEqual(self.get(mw, "/healthz").status_code, 200, "prefixes, like PUBLIC_PATHS")
        self.assertEqual(self.get(mw, "/api/me").status_code, 401)

        def down():
            raise OSError("down")

        with self.assertLogs("wx_identity", "WARNING"):
            r = self.get(self.middleware(verifier=verifier_at(V["now"], fetch=down)), X_WX_Identity=WORKER["token"])
        self.assertEqual((r.status_code, json.loads(r.content)["error"]), (503, "jwks_unavailable"))

    def test_built_from_settings(self):
        from django.test import override_settings

        from wx_identity_django import WxIdentityMiddleware

        conf = {"jwks_url": "https://edge.example.com/.well-known/jwks.json", "audience": V["audience"], "leeway": 10}
        with override_settings(WX_IDENTITY=conf):
            mw = WxIdentityMiddleware(lambda req: None)
        self.assertEqual((mw.verifier.audience, mw.verifier.leeway), (V["audience"], 10))


if __name__ == "__main__":
    unittest.main()
