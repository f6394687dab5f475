//! The service endpoints' configuration: `SERVICE_TOKEN` (and
//! `SERVICE_TOKEN_PREVIOUS`) and the relay's `WX_RELAY_PATHS`.

use super::relay::RelayPaths;
use super::{err, ConfigError};
use crate::secret::{strong_key, AdminToken};

/// A bearer token of the service endpoints. Never prints; compared in
/// constant time.
#[derive(Clone)]
pub(crate) struct ServiceToken(AdminToken);

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceToken([redacted])")
    }
}

impl ServiceToken {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        ServiceToken(AdminToken::new(value))
    }

    /// Whether `presented` is this token (constant time, over digests).
    pub(crate) fn matches(&self, presented: &str) -> bool {
        self.0.matches(presented)
    }
}

/// What the service endpoints are configured with.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceConfig {
    /// `SERVICE_TOKEN`; without it every `/auth/service/*` answers 404.
    pub(crate) token: Option<ServiceToken>,
    /// `SERVICE_TOKEN_PREVIOUS`: also accepted, during a change-over.
    pub(crate) token_previous: Option<ServiceToken>,
    /// `WX_RELAY_PATHS`.
    pub(crate) relay_paths: RelayPaths,
}

impl ServiceConfig {
    /// Reads the variables. `get` returns a set, non-blank value.
    /// `admin_tokens` are `ADMIN_TOKEN` and `ADMIN_TOKEN_PREVIOUS` as set:
    /// a service token equal to one of them is refused (the origin's
    /// servers would hold the operator's key, and the reverse).
    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        admin_tokens: &[(&'static str, Option<String>)],
    ) -> Result<Self, ConfigError> {
        let token = |name: &'static str| -> Result<Option<String>, ConfigError> {
            let Some(v) = get(name) else {
                return Ok(None);
            };
            strong_key(&v).map_err(|problem| err(name, problem))?;
            for (admin, value) in admin_tokens {
                if value.as_deref() == Some(v.as_str()) {
                    return Err(err(
                        name,
                        if *admin == "ADMIN_TOKEN" {
                            "equals ADMIN_TOKEN"
                        } else {
                            "equals ADMIN_TOKEN_PREVIOUS"
                        },
                    ));
                }
            }
            Ok(Some(v))
        };
        let current = token("SERVICE_TOKEN")?;
        let previous = token("SERVICE_TOKEN_PREVIOUS")?;
        match (&current, &previous) {
            (None, Some(_)) => {
                return Err(err(
                    "SERVICE_TOKEN_PREVIOUS",
                    "is set without SERVICE_TOKEN",
                ))
            }
            (Some(c), Some(p)) if c == p => {
                return Err(err("SERVICE_TOKEN_PREVIOUS", "equals SERVICE_TOKEN"))
            }
            _ => {}
        }
        let relay_paths = RelayPaths::parse(get("WX_RELAY_PATHS").as_deref())
            .map_err(|problem| err("WX_RELAY_PATHS", problem))?;
        Ok(ServiceConfig {
            token: current.map(ServiceToken::new),
            token_previous: previous.map(ServiceToken::new),
            relay_paths,
        })
    }

    /// Whether `presented` is `SERVICE_TOKEN` or `SERVICE_TOKEN_PREVIOUS`
    /// (both compared, each in constant time).
    pub(crate) fn is_service_token(&self, presented: &str) -> bool {
        let current = self.token.as_ref().is_some_and(|t| t.matches(presented));
        let previous = self
            .token_previous
            .as_ref()
            .is_some_and(|t| t.matches(presented));
        current | previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::testkit::config::{load, vars};

    const SERVICE: &str = "svc-service-token-0123456789abcdefghijKLMN";
    const OLD: &str = "old-service-token-0123456789abcdefghijKLMN";
    const ADMIN: &str = "op-admin-token-0123456789abcdefghijKLMN";

    fn with(pairs: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let mut v = vars();
        for (k, val) in pairs {
            v.insert(k, (*val).to_string());
        }
        load(&v)
    }

    #[test]
    fn without_service_token_there_is_none() {
        let c = with(&[]).expect("valid");
        assert!(c.service.token.is_none());
        assert!(!c.service.is_service_token(""));
        assert_eq!(c.service.relay_paths, RelayPaths::default());
    }

    #[test]
    fn the_token_and_its_predecessor_are_accepted_and_never_printed() {
        let c =
            with(&[("SERVICE_TOKEN", SERVICE), ("SERVICE_TOKEN_PREVIOUS", OLD)]).expect("valid");
        assert!(c.service.is_service_token(SERVICE));
        assert!(c.service.is_service_token(OLD));
        assert!(!c.service.is_service_token(&SERVICE[1..]));
        assert!(!c.service.is_service_token(&format!("{SERVICE}x")));
        assert!(!c.service.is_service_token(""));
        let shown = format!("{c:?}");
        assert!(!shown.contains(SERVICE) && !shown.contains(OLD), "{shown}");
    }

    #[test]
    fn weak_or_reused_tokens_are_misconfigurations_named_without_their_value() {
        for (pairs, variable, problem) in [
            (
                vec![("SERVICE_TOKEN", "short-service-token")],
                "SERVICE_TOKEN",
                None,
            ),
            (
                vec![("SERVICE_TOKEN", "ab".repeat(20).leak() as &str)],
                "SERVICE_TOKEN",
                None,
            ),
            (
                vec![
                    ("SERVICE_TOKEN", SERVICE),
                    ("SERVICE_TOKEN_PREVIOUS", "weak"),
                ],
                "SERVICE_TOKEN_PREVIOUS",
                None,
            ),
            (
                vec![("SERVICE_TOKEN_PREVIOUS", OLD)],
                "SERVICE_TOKEN_PREVIOUS",
                Some("is set without SERVICE_TOKEN"),
            ),
            (
                vec![
                    ("SERVICE_TOKEN", SERVICE),
                    ("SERVICE_TOKEN_PREVIOUS", SERVICE),
                ],
                "SERVICE_TOKEN_PREVIOUS",
                Some("equals SERVICE_TOKEN"),
            ),
            (
                vec![("ADMIN_TOKEN", ADMIN), ("SERVICE_TOKEN", ADMIN)],
                "SERVICE_TOKEN",
                Some("equals ADMIN_TOKEN"),
            ),
            (
                vec![
                    ("ADMIN_TOKEN", ADMIN),
                    ("ADMIN_TOKEN_PREVIOUS", OLD),
                    ("SERVICE_TOKEN", OLD),
                ],
                "SERVICE_TOKEN",
                Some("equals ADMIN_TOKEN_PREVIOUS"),
            ),
            (
                vec![
                    ("ADMIN_TOKEN", ADMIN),
                    ("SERVICE_TOKEN", SERVICE),
                    ("SERVICE_TOKEN_PREVIOUS", ADMIN),
                ],
                "SERVICE_TOKEN_PREVIOUS",
                Some("equals ADMIN_TOKEN"),
            ),
        ] {
            let e = with(&pairs).expect_err(&format!("{pairs:?}"));
            assert_eq!(e.variable, variable, "{pairs:?}");
            if let Some(problem) = problem {
                assert_eq!(e.problem, problem);
            }
            for (_, value) in &pairs {
                assert!(!e.to_string().contains(value), "{e} echoes a value");
            }
        }
        // A weak token fails as ADMIN_TOKEN's does.
        let e = with(&[("SERVICE_TOKEN", "short-service-token")]).unwrap_err();
        assert_eq!(
            Err(e.problem),
            strong_key("short-service-token").map(|_| ())
        );
    }

    #[test]
    fn relay_paths_are_checked_at_load() {
        let c = with(&[("WX_RELAY_PATHS", "wxa/msg_sec_check")]).expect("valid");
        assert!(c.service.relay_paths.check("wxa/msg_sec_check").is_ok());
        assert!(c.service.relay_paths.check("wxa/getwxacode").is_err());
        for bad in ["sns/jscode2session", "wxa/../x", ","] {
            let e = with(&[("WX_RELAY_PATHS", bad)]).expect_err(bad);
            assert_eq!(e.variable, "WX_RELAY_PATHS");
        }
    }
}
