//! Ed25519 by WebCrypto: workerd signs natively, about ten times faster
//! than ed25519-compact compiled to wasm (measured in workerd: about 24 µs
//! a signature from Rust against 250 µs). Each key is imported once per
//! isolate: `IDENTITY_KEY`, which signs, and `IDENTITY_KEY_NEXT` /
//! `IDENTITY_KEY_PREVIOUS`, whose public halves the JWKS shows.

use std::cell::RefCell;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use js_sys::{Array, Object, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CryptoKey, SubtleCrypto, WorkerGlobalScope};
use worker::console_error;
use worker::wasm_bindgen_futures::JsFuture;

use crate::token::identity::{Ed25519, IdentityKey, LocalFuture, SigningError};

const ALGORITHM: &str = "Ed25519";
/// A PKCS #8 Ed25519 private key up to its 32-byte seed (RFC 8410).
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[wasm_bindgen]
extern "C" {
    /// An exported key in JWK form; an Ed25519 public key is its `x`.
    #[wasm_bindgen(extends = Object)]
    type Jwk;

    #[wasm_bindgen(method, getter)]
    fn x(this: &Jwk) -> Option<String>;
}

/// The runtime's Ed25519, with the keys it imported (at most
/// [`MAX_IMPORTED`]: the current, next and previous identity keys).
#[derive(Default)]
pub(super) struct WebCrypto {
    imported: RefCell<Vec<Imported>>,
}

/// How many imported keys are kept: the three a configuration names.
const MAX_IMPORTED: usize = 3;

#[derive(Clone)]
struct Imported {
    /// SHA-256 of the seed: which key this is, without a second copy of it.
    seed_digest: [u8; 32],
    key: CryptoKey,
    public: [u8; 32],
}

impl WebCrypto {
    async fn imported(&self, key: &IdentityKey) -> Result<Imported, SigningError> {
        let seed_digest: [u8; 32] = Sha256::digest(key.seed()).into();
        if let Some(i) = self
            .imported
            .borrow()
            .iter()
            .find(|i| i.seed_digest == seed_digest)
        {
            return Ok(i.clone());
        }
        let imported = import(key, seed_digest).await.map_err(|e| {
            console_error!("WebCrypto could not import an identity key: {e:?}");
            SigningError
        })?;
        let mut kept = self.imported.borrow_mut();
        if kept.len() >= MAX_IMPORTED {
            kept.remove(0);
        }
        kept.push(imported.clone());
        Ok(imported)
    }
}

fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto = js_sys::global()
        .unchecked_into::<WorkerGlobalScope>()
        .crypto()?;
    if crypto.is_undefined() {
        return Err(JsValue::from_str("no crypto global"));
    }
    Ok(crypto.subtle())
}

async fn import(key: &IdentityKey, seed_digest: [u8; 32]) -> Result<Imported, JsValue> {
    let subtle = subtle()?;
    let mut pkcs8 = [0_u8; 48];
    pkcs8[..16].copy_from_slice(&PKCS8_PREFIX);
    pkcs8[16..].copy_from_slice(key.seed());
    let der = Uint8Array::from(&pkcs8[..]);
    pkcs8.fill(0);
    let usages = Array::of1(&JsValue::from_str("sign"));
    let import = |extractable: bool| {
        subtle.import_key_with_str("pkcs8", &der, ALGORITHM, extractable, &usages)
    };
    // Extractable once, only to read the public half (its JWK's `x`)...
    let readable: CryptoKey = JsFuture::from(import(true)?).await?.unchecked_into();
    let jwk: Jwk = JsFuture::from(subtle.export_key("jwk", &readable)?)
        .await?
        .unchecked_into();
    let x = jwk
        .x()
        .ok_or_else(|| JsValue::from_str("the exported JWK has no x"))?;
    let public: [u8; 32] = B64URL
        .decode(x)
        .ok()
        .and_then(|pk| pk.try_into().ok())
        .ok_or_else(|| JsValue::from_str("the exported JWK's x is not a 32-byte key"))?;
    // ...and for signing, a key that cannot be read back.
    let key: CryptoKey = JsFuture::from(import(false)?).await?.unchecked_into();
    der.fill(0, 0, der.length());
    Ok(Imported {
        seed_digest,
        key,
        public,
    })
}

async fn sign(key: &CryptoKey, message: &[u8]) -> Result<[u8; 64], JsValue> {
    let promise = subtle()?.sign_with_str_and_u8_array(ALGORITHM, key, message)?;
    let signature = Uint8Array::new(&JsFuture::from(promise).await?);
    let mut out = [0_u8; 64];
    if signature.length() as usize != out.len() {
        return Err(JsValue::from_str("the signature is not 64 bytes"));
    }
    signature.copy_to(&mut out);
    Ok(out)
}

impl Ed25519 for WebCrypto {
    fn public_key<'a>(
        &'a self,
        key: &'a IdentityKey,
    ) -> LocalFuture<'a, Result<[u8; 32], SigningError>> {
        Box::pin(async move { Ok(self.imported(key).await?.public) })
    }

    fn sign<'a>(
        &'a self,
        key: &'a IdentityKey,
        message: &'a [u8],
    ) -> LocalFuture<'a, Result<[u8; 64], SigningError>> {
        Box::pin(async move {
            let imported = self.imported(key).await?;
            sign(&imported.key, message).await.map_err(|e| {
                console_error!("WebCrypto Ed25519 signing failed: {e:?}");
                SigningError
            })
        })
    }
}
