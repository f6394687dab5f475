"""A minimal Django origin behind wx-edge, in one file (standard-library
WSGI server): every path answers who the verified assertion says is
calling. The end-to-end tests run it behind the real worker.

    python origin/python/example_django_origin.py \\
        --jwks-url http://127.0.0.1:8787/.well-known/jwks.json --port 8790
    # then the worker's ORIGIN_URL = http://127.0.0.1:8790

It prints its URL on stdout once it listens. The audience is its own
origin (http://127.0.0.1:PORT) unless --audience says otherwise.
"""

import argparse
import os
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jwks-url", required=True)
    p.add_argument("--audience")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()

    server = make_server(a.host, a.port, lambda env, start: app(env, start), _ThreadingServer, _Quiet)
    url = f"http://{a.host}:{server.server_port}"

    import django
    from django.conf import settings
    from django.http import JsonResponse
    from django.urls import re_path

    def whoami(request):
        i = request.wx_identity
        return JsonResponse(
            {
                "origin": "django",
                "openid": i.openid,
                "unionid": i.unionid,
                "appid": i.appid,
                "phone": i.phone,
                "path": request.path,
            }
        )

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["wx_identity_django.WxIdentityMiddleware"],
        WX_IDENTITY={"jwks_url": a.jwks_url, "audience": a.audience or url},
    )
    globals()["urlpatterns"] = [re_path(r"", whoami)]
    django.setup()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    print(url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
