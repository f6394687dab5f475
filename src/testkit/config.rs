//! The configuration and keys of every test.

use std::collections::HashMap;

use crate::config::{Config, ConfigError};

/// The `TOKEN_SECRET` of every test.
pub(crate) const TEST_SECRET: &str = "test-only-token-secret-0123456789abcdefghijklmnop";
/// The `REFRESH_SECRET` of every test.
pub(crate) const TEST_REFRESH_SECRET: &str = "test-only-refresh-secret-0123456789abcdefghijklmnop";
/// The `IDENTITY_KEY` (an Ed25519 seed) of every test.
pub(crate) const TEST_IDENTITY_SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The `WX_APPID` of every test.
pub(crate) const APPID: &str = "wxd930ea5d5a258f4f";
/// The `WX_APPSECRET` of every test.
pub(crate) const APP_SECRET: &str = "appsecret-value-123";

/// The environment of a valid deployment, to change one variable of.
pub(crate) fn vars() -> HashMap<&'static str, String> {
    HashMap::from([
        ("WX_APPID", APPID.to_string()),
        ("WX_APPSECRET", APP_SECRET.to_string()),
        ("ORIGIN_URL", "https://api.example.com/v1/".to_string()),
        ("TOKEN_SECRET", TEST_SECRET.to_string()),
        ("REFRESH_SECRET", TEST_REFRESH_SECRET.to_string()),
        ("IDENTITY_KEY", TEST_IDENTITY_SEED.to_string()),
    ])
}

/// The configuration `vars` make.
pub(crate) fn load(vars: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
    Config::from_lookup(|k| vars.get(k).cloned())
}

/// The configuration of [`vars`].
pub(crate) fn test_config() -> Config {
    load(&vars()).expect("test config is valid")
}
