"""The service-endpoint client against a local stub of the worker: what it
sends, what it returns, and which typed error each refusal becomes. The same
client against the real worker: tests/integration/origin-service.test.mjs.

    python -m unittest discover -s origin/python
"""

import json
import os
import sys
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wx_edge_service import (  # noqa: E402
    NoLiveSessionError,
    RateLimitedError,
    RelayRefusedError,
    ServiceAuthError,
    ServiceClient,
    ServiceError,
    UnavailableError,
)

TOKEN = "service-token-for-the-stub-0123456789abcdef"


class Stub(BaseHTTPRequestHandler):
    seen: list = []
    answer = staticmethod(lambda path: (500, {}, b"{}"))

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Stub.seen.append((self.command, self.path, self.headers.get("Authorization"), self.headers.get("Content-Type"), body))
        status, headers, data = Stub.answer(self.path)
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _any

    def log_message(self, *args):
        pass


def refusal(status, error, headers=None, **extra):
    body = json.dumps({"error": error, "message": f"the stub says {error}", **extra}).encode()
    return lambda path: (status, {"X-WX-Edge-Error": error, **(headers or {})}, body)


class ServiceClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.client = ServiceClient(f"http://127.0.0.1:{cls.server.server_address[1]}", token=TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        Stub.seen.clear()

    def test_each_call_posts_to_its_endpoint_with_the_token(self):
        answers = {
            "check": b'{"valid":true}',
            "reset": b'{"reset":true}',
            "sign": b'{"signature":"ab12","sig_method":"hmac_sha256"}',
            "decrypt": b'{"data":{"openGId":"g1","watermark":{"appid":"wx1","timestamp":1}}}',
        }
        Stub.answer = staticmethod(lambda path: (200, {}, answers[path.rsplit("/", 1)[1]]))
        c = self.client
        self.assertIs(c.check_session_key("oUser_1-x"), True)
        self.assertIs(c.reset_session_key("oUser_1-x"), True)
        self.assertEqual(c.sign("oUser_1-x", 'payload "data"'), {"signature": "ab12", "sig_method": "hmac_sha256"})
        self.assertEqual(c.decrypt("oUser_1-x", "ZW5j", "aXY="), {"openGId": "g1", "watermark": {"appid": "wx1", "timestamp": 1}})
        base = "/auth/service/users/oUser_1-x/"
        self.assertEqual(
            [(m, p, a) for m, p, a, _, _ in Stub.seen],
            [("POST", base + r, f"Bearer {TOKEN}") for r in ("session-key/check", "session-key/reset", "sign", "decrypt")],
        )
        self.assertEqual(json.loads(Stub.seen[2][4]), {"data": 'payload "data"'})
        self.assertEqual(Stub.seen[2][3], "application/json")
        self.assertEqual(json.loads(Stub.seen[3][4]), {"encryptedData": "ZW5j", "iv": "aXY="})
        Stub.answer = staticmethod(lambda path: (200, {}, b'{"valid":"yes"}'))
        self.assertIs(c.check_session_key("oUser1"), False)

    def test_refusals_are_typed_errors(self):
        cases = [
            (refusal(404, "not_found"), NoLiveSessionError, 404, "not_found", None),
            (refusal(401, "unauthorized"), ServiceAuthError, 401, "unauthorized", None),
            (refusal(429, "rate_limited", {"Retry-After": "60"}), RateLimitedError, 429, "rate_limited", 60),
            (refusal(503, "store_unavailable", {"Retry-After": "2"}), UnavailableError, 503, "store_unavailable", 2),
            (refusal(502, "wechat_unavailable", wechat_errcode=40013), UnavailableError, 502, "wechat_unavailable", None),
            (refusal(400, "watermark_mismatch"), ServiceError, 400, "watermark_mismatch", None),
        ]
        for answer, kind, status, error, retry_after in cases:
            Stub.answer = staticmethod(answer)
            with self.assertRaises(kind) as ctx:
                self.client.decrypt("oUser1", "x", "y")
            e = ctx.exception
            self.assertIsInstance(e, ServiceError)
            self.assertEqual((e.status, e.error, e.retry_after), (status, error, retry_after))
            self.assertEqual(e.message, f"the stub says {error}")
        self.assertEqual(e.__class__, ServiceError)
        Stub.answer = staticmethod(refusal(502, "wechat_unavailable", wechat_errcode=40013))
        with self.assertRaises(UnavailableError) as ctx:
            self.client.check_session_key("oUser1")
        self.assertEqual(ctx.exception.wechat_errcode, 40013)

    def test_relay_returns_wechat_s_answer_as_is(self):
        Stub.answer = staticmethod(lambda path: (200, {"Content-Type": "application/json; encoding=utf-8"}, b'{"errcode":87014}'))
        r = self.client.relay("wxa/msg_sec_check", json={"content": "hi"}, query={"lang": "zh_CN"})
        self.assertEqual((r.status, r.content_type, r.json()), (200, "application/json; encoding=utf-8", {"errcode": 87014}))
        m, p, a, ct, body = Stub.seen[-1]
        self.assertEqual((m, p, ct, body), ("POST", "/auth/service/wechat/wxa/msg_sec_check?lang=zh_CN", "application/json", b'{"content": "hi"}'))
        Stub.answer = staticmethod(lambda path: (200, {"Content-Type": "image/png"}, b"\x89PNG"))
        self.assertEqual(self.client.relay("wxa/getwxacodeunlimit", json={"scene": "a"}).body, b"\x89PNG")
        Stub.answer = staticmethod(lambda path: (200, {}, b'{"errcode":0}'))
        self.client.relay("cgi-bin/openapi/quota/get", method="GET")
        self.assertEqual(Stub.seen[-1][0], "GET")
        Stub.answer = staticmethod(refusal(403, "relay_refused"))
        with self.assertRaises(RelayRefusedError):
            self.client.relay("wxa/other", json={})

    def test_abusable_input_is_refused_before_sending(self):
        for p in ["/cgi-bin/token", "../admin", "wxa/../../auth/admin/users/x", "wxa/./x", "wxa//x", "wxa/x?access_token=mine", "wxa/%2e%2e", ""]:
            with self.assertRaises(ValueError, msg=p):
                self.client.relay(p)
        for o in ["", "../admin", "a/b", "a?b", "a%2f", "x" * 129, 42]:
            with self.assertRaises(ValueError, msg=repr(o)):
                self.client.sign(o, "d")
        with self.assertRaises(TypeError):
            self.client.sign("oUser1", {"not": "a string"})
        self.assertEqual(Stub.seen, [])
        for bad in ["http://edge.example.com", "https://edge.example.com?x=1", "ftp://127.0.0.1", "edge.example.com"]:
            with self.assertRaises(ValueError, msg=bad):
                ServiceClient(bad, token=TOKEN)
        with self.assertRaises(ValueError):
            ServiceClient("https://edge.example.com", token="")
        self.assertNotIn(TOKEN, repr(ServiceClient("https://edge.example.com/", token=TOKEN)))

    def test_a_redirect_is_not_followed_with_the_token(self):
        Stub.answer = staticmethod(lambda path: (302, {"Location": "http://127.0.0.1:9/elsewhere"}, b""))
        with self.assertRaises(ServiceError) as ctx:
            self.client.check_session_key("oUser1")
        self.assertEqual(ctx.exception.status, 302)
        self.assertEqual(len(Stub.seen), 1)


if __name__ == "__main__":
    unittest.main()
