//! Typed configuration, validated once from the worker's environment.
//!
//! `Config::from_lookup` takes a lookup function (the shell passes one that
//! reads vars and secrets), so every rule here is tested on the host. An
//! error names the variable and the problem, never the value.

use crate::ids::AppId;
use crate::logs::LogSalt;
use crate::secret::{strong_key, AdminToken, AppSecret};
use crate::token::access::TokenKey;
use crate::token::identity::IdentityKey;
use crate::token::refresh::RefreshKey;

mod client_ip;
mod cors;
pub(crate) mod relay;
#[cfg(test)]
mod rotation_tests;
mod service;
mod url;

pub(crate) use client_ip::ADDRESS_PARTS;
pub(crate) use cors::CorsOrigins;
pub(crate) use service::ServiceConfig;

use url::tls_base;

/// Where a request's session is checked: for proxied requests, as
/// `SESSION_CHECK` says; the flows also name one outright (`/auth/session`
/// asks the authority whatever the setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionCheck {
    /// The session's KV replica: a revocation holds at once at the edge
    /// that made it, within KV's propagation (about 60 s) elsewhere.
    EveryRequest,
    /// The access token alone: trusted until `exp`.
    RefreshOnly,
    /// Every proxied request asks the session authority: a revocation holds
    /// everywhere at once.
    Authority,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) appid: AppId,
    pub(crate) app_secret: AppSecret,
    /// Base URL of WeChat's API, without a trailing slash.
    pub(crate) api_base: String,
    /// The origin API, without a trailing slash; path and query are appended.
    pub(crate) origin_url: String,
    /// The origin URL's origin (`scheme://host[:port]`), the `aud` of
    /// `X-WX-Identity`.
    pub(crate) origin_audience: String,
    pub(crate) token_key: TokenKey,
    /// Tags refresh tokens (`REFRESH_SECRET`): its own key, so that
    /// rotating `TOKEN_SECRET` logs nobody out.
    pub(crate) refresh_key: RefreshKey,
    pub(crate) identity_key: Option<IdentityKey>,
    /// `IDENTITY_KEY_NEXT`: published in the JWKS, never signs (the key
    /// that will become `IDENTITY_KEY`).
    pub(crate) identity_key_next: Option<IdentityKey>,
    /// `IDENTITY_KEY_PREVIOUS`: published in the JWKS, never signs (the
    /// key `IDENTITY_KEY` replaced, while its assertions may be in flight).
    pub(crate) identity_key_previous: Option<IdentityKey>,
    pub(crate) access_ttl: u64,
    pub(crate) refresh_ttl: u64,
    /// `SESSION_MAX_AGE`: no refresh extends a session past login + this.
    pub(crate) session_max_age: u64,
    pub(crate) session_check: SessionCheck,
    /// `REPLICA_CACHE_SECS`: how long an isolate keeps a replica's answer
    /// for `every-request` (0: not at all).
    pub(crate) replica_cache_secs: u64,
    pub(crate) public_paths: Vec<String>,
    pub(crate) require_phone: bool,
    pub(crate) phone_allowlist: bool,
    /// Time allowed for one WeChat call (`WX_TIMEOUT_MS`).
    pub(crate) wechat_timeout_ms: u64,
    /// The operator endpoints' bearer token (`ADMIN_TOKEN`); without it
    /// they answer 404.
    pub(crate) admin_token: Option<AdminToken>,
    /// `ADMIN_TOKEN_PREVIOUS`: also accepted, during a change-over.
    pub(crate) admin_token_previous: Option<AdminToken>,
    /// `PHONE_DATA_MAX_AGE`: legacy phone data whose watermark timestamp
    /// is older than this many seconds is refused.
    pub(crate) phone_data_max_age: u64,
    /// `SERVICE_TOKEN`, `SERVICE_TOKEN_PREVIOUS`, `WX_RELAY_PATHS`.
    pub(crate) service: ServiceConfig,
    /// Keys the user hash in operator logs (derived from `REFRESH_SECRET`,
    /// which is never rotated, so a user keeps one hash across
    /// `TOKEN_SECRET` rotations).
    pub(crate) log_salt: LogSalt,
    /// `CLIENT_IP_HEADER`: the header the client's address is read from.
    pub(crate) client_ip_header: String,
    /// `CORS_ORIGINS`: the browser origins allowed to call the worker.
    pub(crate) cors_origins: CorsOrigins,
}

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfigError {
    pub(crate) variable: &'static str,
    pub(crate) problem: &'static str,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.variable, self.problem)
    }
}

pub(crate) const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";

/// `PHONE_DATA_MAX_AGE`'s default, in seconds. WeChat documents the
/// watermark's `timestamp` as the time the data was obtained, "for
/// checking the data's timeliness", without naming a window; the client
/// sends the data right after the user's tap, so ten minutes covers a slow
/// network and the client's retries, and a captured `encryptedData`/`iv`
/// stops working after it.
pub(crate) const DEFAULT_PHONE_DATA_MAX_AGE: u64 = 600;

/// `REPLICA_CACHE_SECS`' default and most (see `flows::replica_cache`).
pub(crate) const DEFAULT_REPLICA_CACHE_SECS: u64 = 2;
pub(crate) const MAX_REPLICA_CACHE_SECS: u64 = 10;

fn err(variable: &'static str, problem: &'static str) -> ConfigError {
    ConfigError { variable, problem }
}

impl Config {
    /// Reads and validates every variable. `get` returns a var's or a
    /// secret's value, or `None` when it is not set.
    // One variable after another, in the contract's order: splitting it
    // would only scatter the table.
    #[allow(clippy::too_many_lines)]
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let appid = get("WX_APPID").ok_or(err("WX_APPID", "is missing"))?;
        if !appid.starts_with("wx")
            || appid.len() < 10
            || !appid.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(err(
                "WX_APPID",
                "is not a mini-program appid (wx followed by letters and digits)",
            ));
        }
        let app_secret =
            AppSecret::new(get("WX_APPSECRET").ok_or(err("WX_APPSECRET", "is missing"))?);

        let api_base = match get("WX_API_BASE") {
            None => DEFAULT_API_BASE.to_string(),
            Some(v) => tls_base(&v).map_err(|p| err("WX_API_BASE", p))?.0,
        };
        let (origin_url, origin_audience) =
            tls_base(&get("ORIGIN_URL").ok_or(err("ORIGIN_URL", "is missing"))?)
                .map_err(|p| err("ORIGIN_URL", p))?;

        let token_secret = get("TOKEN_SECRET").ok_or(err("TOKEN_SECRET", "is missing"))?;
        let mut token_key =
            TokenKey::new(&token_secret).map_err(|problem| err("TOKEN_SECRET", problem))?;
        if let Some(previous) = get("TOKEN_SECRET_PREVIOUS") {
            if previous == token_secret {
                return Err(err("TOKEN_SECRET_PREVIOUS", "equals TOKEN_SECRET"));
            }
            token_key = token_key
                .with_previous(&previous)
                .map_err(|problem| err("TOKEN_SECRET_PREVIOUS", problem))?;
        }
        let refresh_secret = get("REFRESH_SECRET").ok_or(err("REFRESH_SECRET", "is missing"))?;
        let mut refresh_key =
            RefreshKey::new(&refresh_secret).map_err(|problem| err("REFRESH_SECRET", problem))?;
        if let Some(previous) = get("REFRESH_SECRET_PREVIOUS") {
            if previous == refresh_secret {
                return Err(err("REFRESH_SECRET_PREVIOUS", "equals REFRESH_SECRET"));
            }
            refresh_key = refresh_key
                .with_previous(&previous)
                .map_err(|problem| err("REFRESH_SECRET_PREVIOUS", problem))?;
        }
        let log_salt = LogSalt::derive(&refresh_secret);
        let identity = |name: &'static str| match get(name) {
            None => Ok(None),
            Some(v) => IdentityKey::from_base64_seed(&v)
                .map(Some)
                .map_err(|p| err(name, p)),
        };
        let identity_key = identity("IDENTITY_KEY")?;
        let identity_key_next = identity("IDENTITY_KEY_NEXT")?;
        let identity_key_previous = identity("IDENTITY_KEY_PREVIOUS")?;
        let same = |a: &Option<IdentityKey>, b: &Option<IdentityKey>| matches!((a, b), (Some(a), Some(b)) if a.same_key(b));
        if same(&identity_key_next, &identity_key) {
            return Err(err("IDENTITY_KEY_NEXT", "equals IDENTITY_KEY"));
        }
        if same(&identity_key_previous, &identity_key) {
            return Err(err("IDENTITY_KEY_PREVIOUS", "equals IDENTITY_KEY"));
        }
        if same(&identity_key_previous, &identity_key_next) {
            return Err(err("IDENTITY_KEY_PREVIOUS", "equals IDENTITY_KEY_NEXT"));
        }

        let access_ttl = seconds(get("ACCESS_TOKEN_TTL"), "ACCESS_TOKEN_TTL", 600, 60, 86_400)?;
        let refresh_ttl = seconds(
            get("REFRESH_TOKEN_TTL"),
            "REFRESH_TOKEN_TTL",
            2_592_000,
            300,
            31_536_000,
        )?;
        if refresh_ttl <= access_ttl {
            return Err(err(
                "REFRESH_TOKEN_TTL",
                "must be longer than ACCESS_TOKEN_TTL",
            ));
        }
        let session_max_age = seconds(
            get("SESSION_MAX_AGE"),
            "SESSION_MAX_AGE",
            7_776_000,
            300,
            315_360_000,
        )?;
        if session_max_age <= access_ttl {
            return Err(err(
                "SESSION_MAX_AGE",
                "must be longer than ACCESS_TOKEN_TTL",
            ));
        }
        let session_check = match get("SESSION_CHECK").as_deref() {
            None | Some("every-request") => SessionCheck::EveryRequest,
            Some("refresh-only") => SessionCheck::RefreshOnly,
            Some("authority") => SessionCheck::Authority,
            Some(_) => {
                return Err(err(
                    "SESSION_CHECK",
                    "must be every-request, refresh-only or authority",
                ))
            }
        };
        let replica_cache_secs = seconds(
            get("REPLICA_CACHE_SECS"),
            "REPLICA_CACHE_SECS",
            DEFAULT_REPLICA_CACHE_SECS,
            0,
            MAX_REPLICA_CACHE_SECS,
        )?;
        let public_paths = match get("PUBLIC_PATHS") {
            None => Vec::new(),
            Some(v) => {
                let paths: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect();
                if paths.iter().any(|p| !p.starts_with('/')) {
                    return Err(err(
                        "PUBLIC_PATHS",
                        "must be comma-separated paths starting with /",
                    ));
                }
                if paths
                    .iter()
                    .any(|p| p == "/" || p == "/auth" || p.starts_with("/auth/"))
                {
                    return Err(err("PUBLIC_PATHS", "may not cover / or /auth"));
                }
                paths
            }
        };
        let require_phone = boolean(get("REQUIRE_PHONE").as_deref(), "REQUIRE_PHONE")?;
        let phone_allowlist = boolean(get("PHONE_ALLOWLIST").as_deref(), "PHONE_ALLOWLIST")?;
        let wechat_timeout_ms = seconds(get("WX_TIMEOUT_MS"), "WX_TIMEOUT_MS", 5_000, 100, 30_000)?;
        // The same strength rule as the keying secrets: a bearer token
        // that guards every user's sessions is a key too.
        let admin_token = match get("ADMIN_TOKEN") {
            None => None,
            Some(v) => {
                strong_key(&v).map_err(|problem| err("ADMIN_TOKEN", problem))?;
                Some(AdminToken::new(v))
            }
        };
        // The token an operator's scripts may still send while they change
        // over to a new ADMIN_TOKEN: accepted alongside it, never alone.
        let admin_token_previous = match get("ADMIN_TOKEN_PREVIOUS") {
            None => None,
            Some(_) if admin_token.is_none() => {
                return Err(err("ADMIN_TOKEN_PREVIOUS", "is set without ADMIN_TOKEN"))
            }
            Some(v) if get("ADMIN_TOKEN").as_deref() == Some(v.as_str()) => {
                return Err(err("ADMIN_TOKEN_PREVIOUS", "equals ADMIN_TOKEN"))
            }
            Some(v) => {
                strong_key(&v).map_err(|problem| err("ADMIN_TOKEN_PREVIOUS", problem))?;
                Some(AdminToken::new(v))
            }
        };
        let phone_data_max_age = seconds(
            get("PHONE_DATA_MAX_AGE"),
            "PHONE_DATA_MAX_AGE",
            DEFAULT_PHONE_DATA_MAX_AGE,
            30,
            86_400,
        )?;
        let service = ServiceConfig::from_lookup(
            get,
            &["ADMIN_TOKEN", "ADMIN_TOKEN_PREVIOUS"].map(|name| (name, get(name))),
        )?;
        let client_ip_header = client_ip::client_ip_header(get("CLIENT_IP_HEADER"))
            .map_err(|p| err("CLIENT_IP_HEADER", p))?;
        let cors_origins = CorsOrigins::parse(get("CORS_ORIGINS").as_deref())
            .map_err(|problem| err("CORS_ORIGINS", problem))?;

        Ok(Config {
            appid: AppId::new(appid),
            app_secret,
            api_base,
            origin_url,
            origin_audience,
            token_key,
            refresh_key,
            identity_key,
            identity_key_next,
            identity_key_previous,
            access_ttl,
            refresh_ttl,
            session_check,
            replica_cache_secs,
            public_paths,
            require_phone,
            phone_allowlist,
            wechat_timeout_ms,
            session_max_age,
            admin_token,
            admin_token_previous,
            phone_data_max_age,
            service,
            log_salt,
            client_ip_header,
            cors_origins,
        })
    }
}

impl Config {
    /// The keys the JWKS publishes: `IDENTITY_KEY`, `IDENTITY_KEY_NEXT`,
    /// `IDENTITY_KEY_PREVIOUS`, those that are set, in that order.
    pub(crate) fn published_identity_keys(&self) -> Vec<&IdentityKey> {
        [
            &self.identity_key,
            &self.identity_key_next,
            &self.identity_key_previous,
        ]
        .into_iter()
        .filter_map(Option::as_ref)
        .collect()
    }

    /// Whether `presented` is `ADMIN_TOKEN` or `ADMIN_TOKEN_PREVIOUS`
    /// (both compared, each in constant time).
    pub(crate) fn is_admin_token(&self, presented: &str) -> bool {
        let current = self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.matches(presented));
        let previous = self
            .admin_token_previous
            .as_ref()
            .is_some_and(|t| t.matches(presented));
        current | previous
    }

    /// `ACCESS_TOKEN_TTL` as signed seconds, for arithmetic with instants.
    pub(crate) fn access_ttl_secs(&self) -> i64 {
        i64::try_from(self.access_ttl).unwrap_or(i64::MAX)
    }

    /// `SESSION_MAX_AGE` as signed seconds.
    pub(crate) fn session_max_age_secs(&self) -> i64 {
        i64::try_from(self.session_max_age).unwrap_or(i64::MAX)
    }

    /// `REFRESH_TOKEN_TTL` as signed seconds.
    pub(crate) fn refresh_ttl_secs(&self) -> i64 {
        i64::try_from(self.refresh_ttl).unwrap_or(i64::MAX)
    }
}

fn seconds(
    v: Option<String>,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(_) => Err(err(name, "is out of range")),
            Err(_) => Err(err(name, "is not a whole number")),
        },
    }
}

fn boolean(v: Option<&str>, name: &'static str) -> Result<bool, ConfigError> {
    match v {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(err(name, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::url::http_base;
    use super::*;
    use crate::testkit::config::{
        load, test_config, vars, TEST_IDENTITY_SEED, TEST_REFRESH_SECRET, TEST_SECRET,
    };

    #[test]
    fn replica_cache_secs_defaults_to_two_and_is_zero_to_ten() {
        assert_eq!(test_config().replica_cache_secs, 2);
        for (v, want) in [
            ("0", Ok(0)),
            ("10", Ok(10)),
            ("11", Err("is out of range")),
            ("-1", Err("is not a whole number")),
            ("2s", Err("is not a whole number")),
        ] {
            let mut vars = vars();
            vars.insert("REPLICA_CACHE_SECS", v.into());
            let got = load(&vars)
                .map(|c| c.replica_cache_secs)
                .map_err(|e| e.problem);
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn defaults_apply() {
        let c = test_config();
        assert_eq!(c.api_base, "https://api.weixin.qq.com");
        assert_eq!(c.origin_url, "https://api.example.com/v1");
        assert_eq!(c.origin_audience, "https://api.example.com");
        assert_eq!(c.access_ttl, 600);
        assert_eq!(c.refresh_ttl, 2_592_000);
        assert_eq!(c.session_check, SessionCheck::EveryRequest);
        assert!(c.public_paths.is_empty());
        assert!(!c.require_phone && !c.phone_allowlist);
        assert!(c.identity_key.is_some());
        assert_eq!(c.session_max_age, 7_776_000);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn authority_mode_max_age_and_admin_token_parse() {
        let mut v = vars();
        v.insert("SESSION_CHECK", "authority".into());
        v.insert("SESSION_MAX_AGE", "86400".into());
        v.insert(
            "ADMIN_TOKEN",
            "op-admin-token-0123456789abcdefghijKLMN".into(),
        );
        let c = load(&v).expect("valid");
        assert_eq!(c.session_check, SessionCheck::Authority);
        assert_eq!(c.session_max_age, 86_400);
        assert!(c.admin_token.is_some());
        assert!(!format!("{c:?}").contains("0123456789abcdefghij"));
    }

    #[test]
    fn admin_token_is_strength_checked_like_token_secret() {
        for weak in [
            "a".repeat(31) + "b",
            "ab".repeat(20),
            "short-admin-token".into(),
        ] {
            let mut v = vars();
            v.insert("ADMIN_TOKEN", weak.clone());
            let e = load(&v).unwrap_err();
            assert_eq!(e.variable, "ADMIN_TOKEN", "{weak}");
            assert!(!e.to_string().contains(&weak));
            assert_eq!(Err(e.problem), strong_key(&weak).map(|_| ()));
        }
    }

    #[test]
    fn origin_and_wechat_urls_must_be_https_unless_loopback() {
        for name in ["ORIGIN_URL", "WX_API_BASE"] {
            for url in [
                "http://api.example.com",
                "http://10.0.0.1:8080/v1",
                "http://localhost.example.com",
                "http://128.0.0.1",
                "http://[::2]:8788",
                "http://[::ffff:127.0.0.1]",
            ] {
                let mut v = vars();
                v.insert(name, url.into());
                let e = load(&v).unwrap_err();
                assert_eq!(e.variable, name, "{url}");
                assert!(e.problem.contains("https://"), "{url}: {}", e.problem);
            }
            for url in [
                "https://api.example.com",
                "HTTPS://api.example.com/v1",
                "http://127.0.0.1:8788",
                "http://127.9.8.7",
                "http://localhost:8789/api",
                "http://LOCALHOST",
                "http://[::1]:8788",
                "http://[0:0:0:0:0:0:0:1]",
            ] {
                let mut v = vars();
                v.insert(name, url.into());
                assert!(load(&v).is_ok(), "{name}={url}");
            }
        }
    }

    #[test]
    fn phone_data_max_age_has_a_default_and_a_range() {
        assert_eq!(test_config().phone_data_max_age, 600);
        let mut v = vars();
        v.insert("PHONE_DATA_MAX_AGE", "120".into());
        assert_eq!(load(&v).expect("valid").phone_data_max_age, 120);
        for bad in ["0", "10", "86401", "ten"] {
            v.insert("PHONE_DATA_MAX_AGE", bad.into());
            assert_eq!(load(&v).unwrap_err().variable, "PHONE_DATA_MAX_AGE");
        }
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for name in [
            "WX_APPID",
            "WX_APPSECRET",
            "ORIGIN_URL",
            "TOKEN_SECRET",
            "REFRESH_SECRET",
        ] {
            let mut v = vars();
            v.remove(name);
            assert_eq!(load(&v).unwrap_err(), err(name, "is missing"));
            // Blank counts as missing.
            v.insert(name, "  ".into());
            assert_eq!(load(&v).unwrap_err().variable, name);
        }
    }

    #[test]
    fn invalid_values_are_refused_without_echoing_them() {
        let cases: &[(&'static str, &str)] = &[
            ("TOKEN_SECRET", "Zq9xW2"),
            (
                "TOKEN_SECRET",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            ("REFRESH_SECRET", "Zq9xW2kP-tiny"),
            (
                "REFRESH_SECRET",
                "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
            ),
            ("IDENTITY_KEY", "not-base64!!"),
            ("IDENTITY_KEY", "AAECAwQ="),
            ("ORIGIN_URL", "ftp://x.example"),
            ("ORIGIN_URL", "not a url"),
            ("WX_API_BASE", "localhost:8788"),
            ("WX_APPID", "hello"),
            ("ACCESS_TOKEN_TTL", "ten"),
            ("ACCESS_TOKEN_TTL", "5"),
            ("REFRESH_TOKEN_TTL", "600"),
            ("SESSION_CHECK", "sometimes"),
            ("SESSION_MAX_AGE", "ninety days"),
            ("SESSION_MAX_AGE", "60"),
            ("ADMIN_TOKEN", "short-admin-token"),
            ("PUBLIC_PATHS", "health"),
            ("PUBLIC_PATHS", "/auth/x"),
            ("REQUIRE_PHONE", "yes"),
            ("PHONE_ALLOWLIST", "1"),
        ];
        for (name, value) in cases {
            let mut v = vars();
            v.insert(name, value.to_string());
            let e = load(&v).expect_err(&format!("{name}={value} should be refused"));
            let expected_var = if *name == "REFRESH_TOKEN_TTL" {
                "REFRESH_TOKEN_TTL"
            } else {
                name
            };
            assert_eq!(e.variable, expected_var);
            assert!(!e.to_string().contains(value), "{e} echoes the value");
        }
    }

    #[test]
    fn optional_values_parse() {
        let mut v = vars();
        v.insert("WX_API_BASE", "http://127.0.0.1:8788/".into());
        v.insert("SESSION_CHECK", "refresh-only".into());
        v.insert("PUBLIC_PATHS", "/health, /public/".into());
        v.insert("REQUIRE_PHONE", "true".into());
        v.insert("ACCESS_TOKEN_TTL", "120".into());
        v.remove("IDENTITY_KEY");
        let c = load(&v).expect("valid");
        assert_eq!(c.api_base, "http://127.0.0.1:8788");
        assert_eq!(c.session_check, SessionCheck::RefreshOnly);
        // How these paths match is `boundary_props`' test.
        assert_eq!(c.public_paths, vec!["/health", "/public/"]);
        assert!(c.require_phone);
        assert_eq!(c.access_ttl, 120);
        assert!(c.identity_key.is_none());
    }

    #[test]
    fn public_paths_may_start_with_auth_letters() {
        let mut v = vars();
        v.insert("PUBLIC_PATHS", "/authors/".into());
        assert_eq!(load(&v).expect("valid").public_paths, vec!["/authors/"]);
        for bad in ["/", "/auth", "/auth/login"] {
            v.insert("PUBLIC_PATHS", bad.into());
            assert_eq!(load(&v).unwrap_err().variable, "PUBLIC_PATHS", "{bad}");
        }
    }

    #[test]
    fn http_base_canonicalizes_plain_urls() {
        let cases = [
            (
                "https://api.example.com/v1/",
                "https://api.example.com/v1",
                "https://api.example.com",
            ),
            (
                "http://127.0.0.1:8788/",
                "http://127.0.0.1:8788",
                "http://127.0.0.1:8788",
            ),
            (
                "https://api.example.com",
                "https://api.example.com",
                "https://api.example.com",
            ),
            // Scheme and host are case-insensitive; the path is not.
            (
                "HTTPS://API.Example.COM/V1",
                "https://api.example.com/V1",
                "https://api.example.com",
            ),
            // Every trailing slash goes; inner ones stay.
            (
                "https://h.example/v1///",
                "https://h.example/v1",
                "https://h.example",
            ),
            (
                "https://h.example///",
                "https://h.example",
                "https://h.example",
            ),
            (
                "https://h.example/a//b/",
                "https://h.example/a//b",
                "https://h.example",
            ),
            // The default port is left out, another one kept.
            (
                "https://h.example:443/x",
                "https://h.example/x",
                "https://h.example",
            ),
            (
                "http://h.example:80",
                "http://h.example",
                "http://h.example",
            ),
            (
                "https://h.example:80/",
                "https://h.example:80",
                "https://h.example:80",
            ),
            (
                "http://h.example:08788",
                "http://h.example:8788",
                "http://h.example:8788",
            ),
            ("http://h.example:/", "http://h.example", "http://h.example"),
            // IPv6, compressed as URL parsers write it.
            (
                "http://[::1]:8788",
                "http://[::1]:8788",
                "http://[::1]:8788",
            ),
            (
                "http://[0:0:0:0:0:0:0:1]/api",
                "http://[::1]/api",
                "http://[::1]",
            ),
            (
                "https://[2001:DB8::A]:443/",
                "https://[2001:db8::a]",
                "https://[2001:db8::a]",
            ),
            // Single-label hosts, punycode, escapes and sub-delimiters.
            (
                "http://localhost:8789",
                "http://localhost:8789",
                "http://localhost:8789",
            ),
            (
                "https://xn--bcher-kva.example/a%20b/;v=1/@me",
                "https://xn--bcher-kva.example/a%20b/;v=1/@me",
                "https://xn--bcher-kva.example",
            ),
            (
                "http://my_host.internal/",
                "http://my_host.internal",
                "http://my_host.internal",
            ),
        ];
        for (input, base, origin) in cases {
            assert_eq!(
                http_base(input),
                Ok((base.to_string(), origin.to_string())),
                "{input}"
            );
        }
    }

    #[test]
    fn http_base_refuses_what_it_would_have_to_interpret() {
        let cases = [
            ("ftp://x.example", "is not an http(s) URL"),
            ("not a url", "is not an http(s) URL"),
            ("localhost:8788", "is not an http(s) URL"),
            ("http:/x.example", "is not an http(s) URL"),
            ("//x.example", "is not an http(s) URL"),
            ("http://a@b", "may not contain credentials (user@host)"),
            (
                "https://user:pass@h.example/x",
                "may not contain credentials (user@host)",
            ),
            ("https://h.example?x=1", "may not have a query or fragment"),
            ("https://h.example/v1?", "may not have a query or fragment"),
            ("https://h.example/#top", "may not have a query or fragment"),
            ("https://h.example#", "may not have a query or fragment"),
            ("http:///x", "has an invalid host"),
            ("https://", "has an invalid host"),
            ("http://:80", "has an invalid host"),
            ("https://exa mple.com", "has an invalid host"),
            ("https://bücher.example", "has an invalid host"),
            ("https://a..b", "has an invalid host"),
            ("https://example.com.", "has an invalid host"),
            ("https://a%41.example", "has an invalid host"),
            ("http://a\\b/x", "has an invalid host"),
            ("http://::1:8788", "has an invalid host"),
            ("http://[::1", "has an invalid host"),
            ("http://[zz::1]", "has an invalid host"),
            ("http://[fe80::1%25eth0]", "has an invalid host"),
            ("http://127.1", "has an invalid host"),
            ("http://0x7f.0.0.1", "has an invalid host"),
            ("http://256.0.0.1", "has an invalid host"),
            ("http://[::1]8788", "has an invalid port"),
            ("http://h.example:port", "has an invalid port"),
            ("http://h.example:65536", "has an invalid port"),
            ("http://h.example:-1", "has an invalid port"),
            ("http://h.example:+80", "has an invalid port"),
        ];
        for (input, problem) in cases {
            assert_eq!(http_base(input), Err(problem), "{input}");
        }
        for path in [
            "/a/../b",
            "/..",
            "/./x",
            "/%2e%2E/x",
            "/.%2e",
            "/a b",
            "/a\\b",
            "/a\"b",
            "/a<b>",
            "/a%zz",
            "/a%2",
            "/a|b",
            "/é",
        ] {
            assert!(
                http_base(&format!("https://h.example{path}"))
                    .is_err_and(|p| p.starts_with("has a path")),
                "{path}"
            );
        }
    }

    #[test]
    fn url_problems_name_the_variable_not_the_value() {
        let mut v = vars();
        v.insert("ORIGIN_URL", "https://user:hunter2@api.example.com".into());
        let e = load(&v).unwrap_err();
        assert_eq!(
            e,
            err("ORIGIN_URL", "may not contain credentials (user@host)")
        );
        assert!(!e.to_string().contains("hunter2"));
        let mut v = vars();
        v.insert("WX_API_BASE", "https://api.weixin.qq.com/?x".into());
        assert_eq!(load(&v).unwrap_err().variable, "WX_API_BASE");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!("{:?}", test_config());
        assert!(!shown.contains("appsecret-value"), "{shown}");
        assert!(!shown.contains(TEST_SECRET), "{shown}");
        assert!(!shown.contains(TEST_REFRESH_SECRET), "{shown}");
        assert!(!shown.contains(TEST_IDENTITY_SEED), "{shown}");
    }
}
