//! wx-edge: WeChat mini-program login at the edge.
#![forbid(unsafe_code)]

pub mod body;
pub mod config;
pub mod error;
pub mod headers;
pub mod identity;
pub mod phone;
pub mod random;
pub mod router;
pub mod secret;
pub mod service;
pub mod store;
pub mod token;
pub mod wechat;

#[cfg(target_arch = "wasm32")]
mod shell;
