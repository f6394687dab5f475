//! wx-edge: WeChat mini-program login at the edge, as a Cloudflare Worker.
//!
//! # Design choices
//! - **A pure core and a thin shell.** Everything that decides — WeChat
//!   request building and reply parsing, decryption, tokens, header
//!   rewriting, the error → response table — is a plain function or method
//!   with the clock, randomness, storage and transport passed in, tested
//!   with `cargo test` on the host. `shell` (wasm32 only) wires Workers KV,
//!   `fetch`, `Date.now()`, `crypto.getRandomValues` and WebCrypto's
//!   Ed25519, and moves bytes.
//! - **Rooms by flow.** `flows` holds one type, `Edge<P: Platform>`, with
//!   one file per flow: `login`, `refresh`, `session` (the token check,
//!   `/auth/session`, logout), `phone`, `proxy` and `admin` (the operator
//!   endpoints); `serve` turns one request into one answer and the
//!   verified user its log line names. What the flows share lives beside
//!   them: `authority` (the per-user session authority: its versioned
//!   `protocol`, the pure `machine`, the `server` around it and the client
//!   the flows call), `token` (access, refresh, identity assertion),
//!   `wechat` (the calls, the access_token cache, open-data decryption),
//!   `http` (routing, bodies, headers, paths, response heads), `store`
//!   (the KV port and keys), `limits` (rate limits), `logs` (operator log
//!   lines from plain facts), `phone` and `ids` (the values everything is
//!   about). Imports between these rooms form no cycle (`layout_rules`).
//! - **Errors by phase.** Each phase has its own error type; `error` maps
//!   every one onto the contract's table with an exhaustive `From`, and
//!   holds every message a client sees.
//! - **Secrets never print** (`secret`), and values that are easy to swap
//!   have their own types (`ids`, with the `Subject` every token and
//!   identity header is about); a phone number is one type (`phone`), made
//!   only by verification or read back from the worker's own state.
//!
//! Nothing here is public API: the crate is the worker.

// On the host only the tests call the core (the shell that calls it in
// production is wasm32-only); dead code is reported by the wasm32 build,
// which `scripts/test` lints too.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
// Tests do arithmetic on fixed, small instants and name things briefly;
// the production code is held to these lints in the non-test build.
#![cfg_attr(
    test,
    allow(
        clippy::cast_possible_wrap,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::many_single_char_names,
        clippy::similar_names,
        clippy::items_after_statements,
        clippy::unreadable_literal,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps,
        clippy::semicolon_if_nothing_returned,
        clippy::format_collect
    )
)]

mod authority;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod boundary_props;
mod config;
mod error;
mod flows;
mod http;
mod ids;
// The rooms' rules (import cycles, file lengths), checked on the source.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod layout_rules;
mod limits;
mod logs;
mod phone;
mod random;
mod secret;
mod store;
#[cfg(test)]
mod testkit;
mod time;
mod token;
mod wechat;

// Entry points for `cargo fuzz` only (it sets `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod fuzz_api;

#[cfg(target_arch = "wasm32")]
mod shell;
