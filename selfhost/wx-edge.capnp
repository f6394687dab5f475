# The self-host profile: the unmodified release build (build/index.js +
# build/index_bg.wasm) on standalone workerd, for a server of your own (a
# mainland-China region, say). Start it with `scripts/selfhost`, which
# builds, reads the settings and secrets from the environment (or an env
# file outside this directory) and passes the data directory and the listen
# address on the command line. See README "Deploying for mainland China".
#
# Nothing secret is in this file: every setting is a `fromEnvironment`
# binding, read from the process environment when workerd starts (an unset
# one is absent, as an unset var is on Cloudflare).
#
# What stands in for Cloudflare's products:
#   AUTHORITY       Durable Object on `localDisk` with SQL (workerd's
#                   schema marks localDisk EXPERIMENTAL: its file layout
#                   may change in a future workerd)
#   SESSIONS        a KV binding served by selfhost/kv.js (SQLite in a
#                   Durable Object on the same disk)
#   *_LIMITER       `wrapped` bindings from selfhost/ratelimit.js (counters
#                   in memory: one process, fixed windows)
# All persisted data lives under the `data` directory (the `-d data=DIR`
# that scripts/selfhost passes): back that directory up.

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "wx-edge", worker = .edge),
    (name = "kv", worker = .kv),
    # Overridden by `-d data=DIR`; relative paths are relative to this file.
    (name = "data", disk = (path = "data", writable = true)),
    # Outgoing fetches: WeChat's API (public) and the origin, which on a
    # self-hosted server is often on the same machine or a private network.
    # The worker only ever fetches WX_API_BASE and ORIGIN_URL; narrow
    # `allow` to your origin's network if you like.
    (name = "internet", network = (allow = ["public", "private"], tlsOptions = (trustBrowserCas = true))),
  ],

  sockets = [
    # Loopback only: the reverse proxy in front (selfhost/nginx.conf) is
    # the only client. Overridden by `-s http=ADDR`. The proxy terminates
    # TLS and overwrites X-Forwarded-Proto; the worker then sees the
    # client's scheme in the request URL (and passes it to the origin).
    (name = "http", address = "127.0.0.1:8787", service = "wx-edge",
      http = (forwardedProtoHeader = "X-Forwarded-Proto")),
    # The KV namespace itself, for operators (scripts/selfhost-kv: the staff
    # allowlist, say). No address here: scripts/selfhost puts it on a Unix
    # socket inside the data directory (`-s kv-admin=unix:DIR/kv.sock`),
    # which only the service user can reach.
    (name = "kv-admin", http = (), service = "kv"),
  ],

  extensions = [
    ( modules = [
        (name = "wx-edge-selfhost:ratelimit", internal = true, esModule = embed "ratelimit.js"),
      ],
    ),
  ],
);

const edge :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "../build/index.js"),
    (name = "index_bg.wasm", wasm = embed "../build/index_bg.wasm"),
  ],
  # The same date as wrangler.toml.
  compatibilityDate = "2026-08-01",

  bindings = [
    (name = "AUTHORITY", durableObjectNamespace = "Authority"),
    (name = "SESSIONS", kvNamespace = "kv"),

    # The rate limits: the numbers of wrangler.toml's [[ratelimits]].
    (name = "LOGIN_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "300"), (name = "period", json = "60")])),
    (name = "REFRESH_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "600"), (name = "period", json = "60")])),
    (name = "PHONE_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "10"), (name = "period", json = "60")])),
    (name = "WX_LOGIN_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "1000"), (name = "period", json = "60")])),
    (name = "ADMIN_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "30"), (name = "period", json = "60")])),
    (name = "SERVICE_LIMITER", wrapped = (moduleName = "wx-edge-selfhost:ratelimit",
      innerBindings = [(name = "limit", json = "3000"), (name = "period", json = "60")])),

    # Settings (README "Configuration"), each from the environment.
    (name = "WX_APPID", fromEnvironment = "WX_APPID"),
    (name = "WX_API_BASE", fromEnvironment = "WX_API_BASE"),
    (name = "ORIGIN_URL", fromEnvironment = "ORIGIN_URL"),
    (name = "CLIENT_IP_HEADER", fromEnvironment = "CLIENT_IP_HEADER"),
    (name = "ACCESS_TOKEN_TTL", fromEnvironment = "ACCESS_TOKEN_TTL"),
    (name = "REFRESH_TOKEN_TTL", fromEnvironment = "REFRESH_TOKEN_TTL"),
    (name = "SESSION_MAX_AGE", fromEnvironment = "SESSION_MAX_AGE"),
    (name = "SESSION_CHECK", fromEnvironment = "SESSION_CHECK"),
    (name = "PUBLIC_PATHS", fromEnvironment = "PUBLIC_PATHS"),
    (name = "REQUIRE_PHONE", fromEnvironment = "REQUIRE_PHONE"),
    (name = "PHONE_ALLOWLIST", fromEnvironment = "PHONE_ALLOWLIST"),
    (name = "PHONE_DATA_MAX_AGE", fromEnvironment = "PHONE_DATA_MAX_AGE"),
    (name = "WX_TIMEOUT_MS", fromEnvironment = "WX_TIMEOUT_MS"),
    (name = "WX_RELAY_PATHS", fromEnvironment = "WX_RELAY_PATHS"),
    (name = "CORS_ORIGINS", fromEnvironment = "CORS_ORIGINS"),
    (name = "REPLICA_CACHE_SECS", fromEnvironment = "REPLICA_CACHE_SECS"),

    # Secrets, each from the environment (never written here).
    (name = "WX_APPSECRET", fromEnvironment = "WX_APPSECRET"),
    (name = "TOKEN_SECRET", fromEnvironment = "TOKEN_SECRET"),
    (name = "TOKEN_SECRET_PREVIOUS", fromEnvironment = "TOKEN_SECRET_PREVIOUS"),
    (name = "REFRESH_SECRET", fromEnvironment = "REFRESH_SECRET"),
    (name = "REFRESH_SECRET_PREVIOUS", fromEnvironment = "REFRESH_SECRET_PREVIOUS"),
    (name = "IDENTITY_KEY", fromEnvironment = "IDENTITY_KEY"),
    (name = "IDENTITY_KEY_NEXT", fromEnvironment = "IDENTITY_KEY_NEXT"),
    (name = "IDENTITY_KEY_PREVIOUS", fromEnvironment = "IDENTITY_KEY_PREVIOUS"),
    (name = "ADMIN_TOKEN", fromEnvironment = "ADMIN_TOKEN"),
    (name = "ADMIN_TOKEN_PREVIOUS", fromEnvironment = "ADMIN_TOKEN_PREVIOUS"),
    (name = "SERVICE_TOKEN", fromEnvironment = "SERVICE_TOKEN"),
    (name = "SERVICE_TOKEN_PREVIOUS", fromEnvironment = "SERVICE_TOKEN_PREVIOUS"),
  ],

  durableObjectNamespaces = [
    # DO NOT CHANGE uniqueKey: the objects' files are found by it.
    (className = "Authority", uniqueKey = "wx-edge-authority", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "data"),
);

const kv :Workerd.Worker = (
  modules = [(name = "kv.js", esModule = embed "kv.js")],
  compatibilityDate = "2026-08-01",
  bindings = [(name = "STORE", durableObjectNamespace = "KvStore")],
  durableObjectNamespaces = [
    # DO NOT CHANGE uniqueKey: the KV data is found by it.
    (className = "KvStore", uniqueKey = "wx-edge-sessions-kv", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "data"),
);
