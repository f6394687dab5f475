//! The worker's own rate limits (Workers Rate Limiting bindings), so that
//! nobody can spend the app's WeChat quota or the session store by flooding
//! the login endpoints.
//!
//! The limits themselves (how many per period) are set on the bindings in
//! `wrangler.toml`; the core decides what is limited, by which key, and
//! what a failing limiter means for each endpoint.

use std::cell::Cell;
use std::net::IpAddr;

use crate::store::StoreError;

/// What is limited, and by what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `/auth/login`, per client address (binding `LOGIN_LIMITER`).
    Login,
    /// `/auth/refresh`, per client address (binding `REFRESH_LIMITER`).
    Refresh,
    /// `/auth/phone`, per user (binding `PHONE_LIMITER`).
    Phone,
    /// Every `code2Session` call this location makes, keyed by the appid
    /// (binding `WX_LOGIN_LIMITER`): a ceiling under the app's WeChat
    /// quota, however many addresses the logins come from.
    Code2Session,
    /// The operator endpoints, per client address (binding
    /// `ADMIN_LIMITER`): guessing `ADMIN_TOKEN` is slow.
    Admin,
    /// The service endpoints (`/auth/service/*`), per client address
    /// (binding `SERVICE_LIMITER`): a ceiling on the origin's calls.
    Service,
}

/// What a request meets when the limiter itself fails (its binding throws).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Refused: 503 `store_unavailable` with `Retry-After` (the client
    /// library waits and tries again).
    Closed,
    /// Let through unlimited.
    Open,
}

impl Limit {
    /// Every limit, for the shell's bindings and the tests.
    pub(crate) const ALL: [Limit; 6] = [
        Limit::Login,
        Limit::Refresh,
        Limit::Phone,
        Limit::Code2Session,
        Limit::Admin,
        Limit::Service,
    ];

    /// The binding's name in `wrangler.toml`.
    pub(crate) fn binding(self) -> &'static str {
        match self {
            Limit::Login => "LOGIN_LIMITER",
            Limit::Refresh => "REFRESH_LIMITER",
            Limit::Phone => "PHONE_LIMITER",
            Limit::Code2Session => "WX_LOGIN_LIMITER",
            Limit::Admin => "ADMIN_LIMITER",
            Limit::Service => "SERVICE_LIMITER",
        }
    }

    /// What a failing limiter means here. Closed where the limit guards
    /// something an anonymous flood could spend or guess: the app's WeChat
    /// quota (`/auth/login` and the `code2Session` ceiling: quota spent is
    /// logins refused for every user until WeChat's day ends) and
    /// `ADMIN_TOKEN`. Open where the caller already holds a credential that
    /// this deployment minted and the authority checks (a refresh token, an
    /// access token; phone decryption has its own lockout): refusing those
    /// would turn a limiter outage into every session failing to renew.
    /// Open for the service endpoints too: `SERVICE_TOKEN` is 256 bits,
    /// not guessable at any rate, and the limit is a ceiling on the
    /// origin's own calls, which an outage should not stop.
    pub(crate) fn on_failure(self) -> OnFailure {
        match self {
            Limit::Login | Limit::Code2Session | Limit::Admin => OnFailure::Closed,
            Limit::Refresh | Limit::Phone | Limit::Service => OnFailure::Open,
        }
    }
}

/// Seconds a client is told to wait when over a limit: the bindings count
/// per 60-second period.
pub(crate) const RETRY_AFTER: u32 = 60;

/// The rate-limit key of a request without a client address (local
/// development): all such requests share one budget.
pub(crate) const UNKNOWN_CLIENT: &str = "unknown";

/// The rate-limit key of a header value that is not an address: all of
/// them share one budget, so garbage cannot make fresh keys.
pub(crate) const INVALID_CLIENT: &str = "invalid";

/// The rate-limit key of a client address: an IPv4 address as it is; an
/// IPv6 address by its /64 (one subscriber's network: anyone holding one
/// has 2^64 addresses), as `a:b:c:d::/64`; an IPv4-mapped IPv6 address as
/// the IPv4 address it maps.
pub(crate) fn client_key(ip: Option<&str>) -> String {
    let Some(ip) = ip else {
        return UNKNOWN_CLIENT.to_string();
    };
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.to_string(),
        Ok(IpAddr::V6(a)) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                v4.to_string()
            } else {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
        Err(_) => INVALID_CLIENT.to_string(),
    }
}

/// Counts one request against `limit` for `key`.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound wanted on wasm
pub(crate) trait Limiter {
    /// `Ok(true)` while under the limit. `Err` when the limiter itself
    /// failed; callers then do what [`Limit::on_failure`] says.
    async fn allow(&self, limit: Limit, key: &str) -> Result<bool, StoreError>;
}

/// How many times each limiter failed in this isolate (its log lines carry
/// the count, so a dashboard sees the failures even where lines are
/// sampled).
#[derive(Debug, Default)]
pub(crate) struct FailureCounts([Cell<u64>; 6]);

impl FailureCounts {
    fn slot(limit: Limit) -> usize {
        match limit {
            Limit::Login => 0,
            Limit::Refresh => 1,
            Limit::Phone => 2,
            Limit::Code2Session => 3,
            Limit::Admin => 4,
            Limit::Service => 5,
        }
    }

    /// Counts one failure of `limit`'s limiter; the count so far.
    pub(crate) fn record(&self, limit: Limit) -> u64 {
        let cell = &self.0[Self::slot(limit)];
        let n = cell.get().saturating_add(1);
        cell.set(n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_known_addresses() {
        for (ip, key) in [
            (Some("203.0.113.7"), "203.0.113.7"),
            (Some(" 203.0.113.7 "), "203.0.113.7"),
            (Some("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64"),
            (Some("2001:DB8:1:2::"), "2001:db8:1:2::/64"),
            (Some("::1"), "0:0:0:0::/64"),
            (Some("::ffff:198.51.100.9"), "198.51.100.9"),
            (None, UNKNOWN_CLIENT),
            (Some(""), INVALID_CLIENT),
            (Some("not an address"), INVALID_CLIENT),
            (Some("1.2.3.4, 5.6.7.8"), INVALID_CLIENT),
            (Some("2001:db8::1%eth0"), INVALID_CLIENT),
            (Some("[2001:db8::1]"), INVALID_CLIENT),
        ] {
            assert_eq!(client_key(ip), key, "{ip:?}");
        }
    }

    #[test]
    fn every_limit_has_its_own_binding_and_a_failure_policy() {
        let names: std::collections::BTreeSet<_> = Limit::ALL.iter().map(|l| l.binding()).collect();
        assert_eq!(names.len(), Limit::ALL.len());
        assert_eq!(Limit::Login.on_failure(), OnFailure::Closed);
        assert_eq!(Limit::Code2Session.on_failure(), OnFailure::Closed);
        assert_eq!(Limit::Admin.on_failure(), OnFailure::Closed);
        assert_eq!(Limit::Refresh.on_failure(), OnFailure::Open);
        assert_eq!(Limit::Phone.on_failure(), OnFailure::Open);
        assert_eq!(Limit::Service.on_failure(), OnFailure::Open);
        assert_eq!(Limit::Service.binding(), "SERVICE_LIMITER");
    }

    #[test]
    fn failures_are_counted_per_limit() {
        let c = FailureCounts::default();
        assert_eq!(c.record(Limit::Login), 1);
        assert_eq!(c.record(Limit::Login), 2);
        assert_eq!(c.record(Limit::Admin), 1);
        assert_eq!(c.record(Limit::Refresh), 1);
        assert_eq!(c.record(Limit::Login), 3);
        for limit in Limit::ALL {
            assert!(c.record(limit) >= 1, "{limit:?} has a slot");
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    proptest! {
        #[test]
        fn one_slash_64_is_one_key(prefix in any::<u64>(), a in any::<u64>(), b in any::<u64>()) {
            let v6 = |host: u64| {
                let bits = (u128::from(prefix) << 64) | u128::from(host);
                Ipv6Addr::from(bits).to_string()
            };
            let (x, y) = (v6(a), v6(b));
            let is_mapped = Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(a))
                .to_ipv4_mapped()
                .is_some();
            prop_assume!(!is_mapped);
            let is_mapped_b = Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(b))
                .to_ipv4_mapped()
                .is_some();
            prop_assume!(!is_mapped_b);
            prop_assert_eq!(client_key(Some(&x)), client_key(Some(&y)));
            // Upper case and the fully written form: the same key.
            let full = Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(a))
                .segments()
                .iter()
                .map(|s| format!("{s:04X}"))
                .collect::<Vec<_>>()
                .join(":");
            prop_assert_eq!(client_key(Some(&full)), client_key(Some(&x)));
        }

        #[test]
        fn another_slash_64_is_another_key(p in any::<u64>(), q in any::<u64>(), h in any::<u64>()) {
            prop_assume!(p != q && p != 0 && q != 0);
            let v6 = |prefix: u64| Ipv6Addr::from((u128::from(prefix) << 64) | u128::from(h)).to_string();
            prop_assert_ne!(client_key(Some(&v6(p))), client_key(Some(&v6(q))));
        }

        #[test]
        fn ipv4_is_unchanged(bits in any::<u32>()) {
            let a = Ipv4Addr::from(bits).to_string();
            prop_assert_eq!(client_key(Some(&a)), a.clone());
            let mapped = format!("::ffff:{a}");
            prop_assert_eq!(client_key(Some(&mapped)), a);
        }

        #[test]
        fn garbage_gets_a_bounded_key(s in ".{0,64}") {
            let key = client_key(Some(&s));
            prop_assert!(key.len() <= 39, "{key}");
            if s.trim().parse::<IpAddr>().is_err() {
                prop_assert_eq!(key, INVALID_CLIENT);
            }
        }
    }
}
