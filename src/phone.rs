//! WeChat open-data decryption and phone numbers.
//!
//! Pure: no I/O, no clock. The worker shell hands in the session's
//! [`SessionKey`] and the configured appid and maps [`PhoneError`] onto the
//! contract's error table.
//!
//! Design choices:
//! - An [`EncryptedPhone`] (ciphertext as received) and a [`VerifiedPhone`]
//!   (decrypted, watermark checked) are different types; the only ways to a
//!   `VerifiedPhone` from WeChat data are [`EncryptedPhone::open`] and
//!   [`phone_from_phone_info`], both of which check `watermark.appid`.
//! - PKCS#7 padding is checked strictly (pad byte `n` in `1..=16`, all `n`
//!   bytes equal to `n`), so a stale or wrong `session_key` — the commonest
//!   failure, after a second `wx.login()` rotated it — is reported as
//!   [`PhoneError::DecryptFailed`] instead of surfacing as garbage.
//! - Base64 is decoded leniently the way mini-programs deliver it
//!   ([`decode_lenient_base64`]): form/URL decoding turns `+` into a space.
//! - Errors never carry key material, ciphertext or plaintext.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::secret::{ct_eq, SessionKey};

/// AES block size, and the length of WeChat's session_key and iv.
const BLOCK: usize = 16;

/// Field names carried by [`PhoneError::BadInput`].
const FIELD_ENCRYPTED_DATA: &str = "encryptedData";
const FIELD_IV: &str = "iv";
const FIELD_SESSION_KEY: &str = "session_key";

/// Errors, mapped by the caller onto the contract's error table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneError {
    /// `encryptedData` / `iv` not base64, iv not 16 bytes, ciphertext empty
    /// or not a multiple of 16, session_key not 16 bytes → 400
    /// `invalid_request`. Carries the field name: `"encryptedData"`, `"iv"`
    /// or `"session_key"`.
    BadInput(&'static str),
    /// Does not decrypt: strict PKCS#7 check failed, or the plaintext is not
    /// UTF-8 JSON of the expected shape → 400 `decrypt_failed`.
    DecryptFailed,
    /// Decrypted fine, but `watermark.appid` is another app's → 400
    /// `watermark_mismatch`.
    WatermarkMismatch,
}

impl std::fmt::Display for PhoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadInput(FIELD_ENCRYPTED_DATA) => f.write_str(
                "encryptedData must be base64 of a non-empty whole number of 16-byte blocks",
            ),
            Self::BadInput(FIELD_IV) => f.write_str("iv must be base64 of 16 bytes"),
            Self::BadInput(FIELD_SESSION_KEY) => {
                f.write_str("the session's session_key is not base64 of 16 bytes")
            }
            Self::BadInput(field) => write!(f, "invalid {field}"),
            Self::DecryptFailed => f.write_str(
                "data does not decrypt with this session's session_key: \
                 log in again, then fetch the phone again",
            ),
            Self::WatermarkMismatch => f.write_str("decrypted data belongs to another appid"),
        }
    }
}

impl std::error::Error for PhoneError {}

/// The input of [`decode_lenient_base64`] is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidBase64;

impl std::fmt::Display for InvalidBase64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid base64")
    }
}

impl std::error::Error for InvalidBase64 {}

/// Standard alphabet, `=` padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 as mini-programs actually deliver it: repairs `' '` back to `'+'`
/// (form/URL decoding turns `+` into a space), ignores `\r` and `\n`,
/// accepts missing `=` padding; standard alphabet.
pub fn decode_lenient_base64(s: &str) -> Result<Vec<u8>, InvalidBase64> {
    let repaired: String = s
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    LENIENT.decode(repaired).map_err(|_| InvalidBase64)
}

/// AES-128-CBC decrypt with strict PKCS#7 (pad byte `n` in `1..=16`, all `n`
/// bytes equal to `n`). Key = base64-decoded session_key (must be 16 bytes),
/// iv = 16 bytes.
pub fn decrypt_open_data(
    session_key: &SessionKey,
    encrypted_data_b64: &str,
    iv_b64: &str,
) -> Result<Vec<u8>, PhoneError> {
    let mut data = decode_lenient_base64(encrypted_data_b64)
        .map_err(|_| PhoneError::BadInput(FIELD_ENCRYPTED_DATA))?;
    if data.is_empty() || data.len() % BLOCK != 0 {
        return Err(PhoneError::BadInput(FIELD_ENCRYPTED_DATA));
    }
    let iv = decode_lenient_base64(iv_b64).map_err(|_| PhoneError::BadInput(FIELD_IV))?;
    if iv.len() != BLOCK {
        return Err(PhoneError::BadInput(FIELD_IV));
    }
    let key = decode_lenient_base64(session_key.secret())
        .ok()
        .filter(|k| k.len() == BLOCK)
        .ok_or(PhoneError::BadInput(FIELD_SESSION_KEY))?;

    let decryptor = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .map_err(|_| PhoneError::BadInput(FIELD_SESSION_KEY))?;
    // NoPadding over whole blocks cannot fail; the padding is checked below.
    let plain_len = decryptor
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .map_err(|_| PhoneError::DecryptFailed)?
        .len();
    data.truncate(plain_len);
    let unpadded = strict_pkcs7_len(&data).ok_or(PhoneError::DecryptFailed)?;
    data.truncate(unpadded);
    Ok(data)
}

/// The length of `data` without its PKCS#7 padding, or `None` when the
/// padding is not exactly `n` bytes of value `n`, `1 <= n <= 16`.
///
/// Every way this fails ends in the same `DecryptFailed` as a JSON error,
/// and only a holder of the session's access token can submit ciphertext
/// for its key, so no padding oracle is exposed to anyone else.
fn strict_pkcs7_len(data: &[u8]) -> Option<usize> {
    let n = usize::from(*data.last()?);
    if n == 0 || n > BLOCK || n > data.len() {
        return None;
    }
    let (body, pad) = data.split_at(data.len() - n);
    pad.iter()
        .all(|&b| usize::from(b) == n)
        .then_some(body.len())
}

/// Ciphertext as received: not a phone until decrypted and its watermark
/// checked. Deserializes from the legacy `/auth/phone` body
/// (`{"encryptedData": "...", "iv": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedPhone {
    pub encrypted_data: String,
    pub iv: String,
}

/// A phone WeChat vouched for (watermark checked). Distinct type from
/// anything unverified. Serialized with snake_case field names (stored in
/// KV).
///
/// `pure_phone_number` and `country_code` are non-empty ASCII digits, and
/// `phone_number` is non-empty without control characters: they end up in
/// KV keys and request headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPhone {
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

impl EncryptedPhone {
    /// Decrypts, parses `{"phoneNumber", "purePhoneNumber", "countryCode"
    /// (string or number), "watermark": {"appid", "timestamp"}}` and checks
    /// `watermark.appid == expected_appid`.
    pub fn open(
        &self,
        session_key: &SessionKey,
        expected_appid: &str,
    ) -> Result<VerifiedPhone, PhoneError> {
        let plain = decrypt_open_data(session_key, &self.encrypted_data, &self.iv)?;
        let text = std::str::from_utf8(&plain).map_err(|_| PhoneError::DecryptFailed)?;
        let info: PhoneInfo = serde_json::from_str(text).map_err(|_| PhoneError::DecryptFailed)?;
        info.verify(expected_appid)
    }
}

/// The `phone_info` object of a getuserphonenumber reply (same field names,
/// `countryCode` string or number, `watermark.appid` checked). A
/// `phone_info` of the wrong shape is [`PhoneError::DecryptFailed`].
pub fn phone_from_phone_info(
    phone_info: &serde_json::Value,
    expected_appid: &str,
) -> Result<VerifiedPhone, PhoneError> {
    let info = PhoneInfo::deserialize(phone_info).map_err(|_| PhoneError::DecryptFailed)?;
    info.verify(expected_appid)
}

/// Legacy getUserInfo: `hex(sha1(raw_data + session_key))` compared in
/// constant time with `signature` (case-insensitive hex).
pub fn verify_raw_data(raw_data: &str, session_key: &SessionKey, signature: &str) -> bool {
    let digest = Sha1::new()
        .chain_update(raw_data.as_bytes())
        .chain_update(session_key.secret().as_bytes())
        .finalize();
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    ct_eq(
        expected.as_bytes(),
        signature.to_ascii_lowercase().as_bytes(),
    )
}

/// Legacy getUserInfo `encryptedData`: decrypt + watermark check; returns
/// the JSON object without its `watermark`.
pub fn open_user_info(
    session_key: &SessionKey,
    encrypted_data_b64: &str,
    iv_b64: &str,
    expected_appid: &str,
) -> Result<serde_json::Value, PhoneError> {
    let plain = decrypt_open_data(session_key, encrypted_data_b64, iv_b64)?;
    let text = std::str::from_utf8(&plain).map_err(|_| PhoneError::DecryptFailed)?;
    let mut object = match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => object,
        _ => return Err(PhoneError::DecryptFailed),
    };
    let watermark = object
        .remove("watermark")
        .ok_or(PhoneError::DecryptFailed)?;
    let watermark = Watermark::deserialize(&watermark).map_err(|_| PhoneError::DecryptFailed)?;
    watermark.check(expected_appid)?;
    Ok(serde_json::Value::Object(object))
}

/// The phone fields as WeChat sends them, decrypted or in `phone_info`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneInfo {
    phone_number: String,
    pure_phone_number: String,
    country_code: CountryCode,
    watermark: Watermark,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CountryCode {
    Text(String),
    Number(u64),
}

/// `timestamp` is not read: this module has no clock, and WeChat's
/// documentation gives it no meaning for validation.
#[derive(Deserialize)]
struct Watermark {
    appid: String,
}

impl Watermark {
    fn check(&self, expected_appid: &str) -> Result<(), PhoneError> {
        if expected_appid.is_empty() || self.appid != expected_appid {
            return Err(PhoneError::WatermarkMismatch);
        }
        Ok(())
    }
}

impl PhoneInfo {
    fn verify(self, expected_appid: &str) -> Result<VerifiedPhone, PhoneError> {
        self.watermark.check(expected_appid)?;
        let country_code = match self.country_code {
            CountryCode::Text(text) => text,
            CountryCode::Number(number) => number.to_string(),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let printable =
            !self.phone_number.is_empty() && !self.phone_number.chars().any(char::is_control);
        if !digits(&self.pure_phone_number) || !digits(&country_code) || !printable {
            return Err(PhoneError::DecryptFailed);
        }
        Ok(VerifiedPhone {
            phone_number: self.phone_number,
            pure_phone_number: self.pure_phone_number,
            country_code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{json, Value};

    /// Test-only copy of the shared vectors; each section names its source
    /// in the file's `_source`.
    fn vectors() -> Value {
        serde_json::from_str(include_str!("../tests/fixtures/wechat-vectors.json"))
            .expect("fixture is JSON")
    }

    fn field<'a>(v: &'a Value, case: &str, name: &str) -> &'a str {
        v[case][name]
            .as_str()
            .unwrap_or_else(|| panic!("{case}.{name} in fixture"))
    }

    fn key_of(v: &Value, case: &str) -> SessionKey {
        SessionKey::new(field(v, case, "session_key"))
    }

    fn encrypted(v: &Value, case: &str) -> EncryptedPhone {
        EncryptedPhone {
            encrypted_data: field(v, case, "encrypted_data").to_owned(),
            iv: field(v, case, "iv").to_owned(),
        }
    }

    /// AES-128-CBC over `padded` as given (NoPadding: the caller makes the
    /// pad bytes).
    fn encrypt_raw(key: &[u8; 16], iv: &[u8; 16], padded: &[u8]) -> Vec<u8> {
        assert_eq!(padded.len() % 16, 0);
        let mut buf = padded.to_vec();
        let len = buf.len();
        cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("whole blocks");
        buf
    }

    fn pkcs7(plain: &[u8]) -> Vec<u8> {
        let n = 16 - plain.len() % 16;
        let mut out = plain.to_vec();
        out.extend(std::iter::repeat_n(n as u8, n));
        out
    }

    const KEY: [u8; 16] = *b"0123456789abcdef";
    const IV: [u8; 16] = *b"fedcba9876543210";

    fn decrypt_made(padded: &[u8]) -> Result<Vec<u8>, PhoneError> {
        let ct = encrypt_raw(&KEY, &IV, padded);
        decrypt_open_data(
            &SessionKey::new(STANDARD.encode(KEY)),
            &STANDARD.encode(ct),
            &STANDARD.encode(IV),
        )
    }

    fn phone_json(country_code: Value, appid: &str) -> Value {
        json!({
            "phoneNumber": "13800138000",
            "purePhoneNumber": "13800138000",
            "countryCode": country_code,
            "watermark": {"timestamp": 1764000000, "appid": appid}
        })
    }

    const APPID: &str = "wxd930ea5d5a258f4f";

    #[test]
    fn official_sample_decrypts_to_its_exact_plaintext() {
        let v = vectors();
        let case = "decrypt_userinfo";
        let plain = decrypt_open_data(
            &key_of(&v, case),
            field(&v, case, "encrypted_data"),
            field(&v, case, "iv"),
        )
        .expect("official sample decrypts");
        assert_eq!(plain, field(&v, case, "plaintext").as_bytes());
    }

    #[test]
    fn open_user_info_checks_the_watermark_and_drops_it() {
        let v = vectors();
        let case = "decrypt_userinfo";
        let (key, data, iv) = (
            key_of(&v, case),
            field(&v, case, "encrypted_data"),
            field(&v, case, "iv"),
        );
        let info = open_user_info(&key, data, iv, field(&v, case, "appid")).expect("opens");
        assert_eq!(info["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(info["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert!(info.get("watermark").is_none());

        assert_eq!(
            open_user_info(&key, data, iv, APPID),
            Err(PhoneError::WatermarkMismatch)
        );
        assert_eq!(
            open_user_info(&key, data, iv, ""),
            Err(PhoneError::WatermarkMismatch)
        );
    }

    #[test]
    fn open_user_info_rejects_a_plaintext_of_the_wrong_shape() {
        for plain in [
            &b"[1,2,3]"[..],
            b"{\"openId\":\"x\"}",
            b"{\"watermark\":{}}",
            b"{\"watermark\":{\"appid\":\"wxd930ea5d5a258f4f\"}} trailing",
            b"\xff\xfe not utf-8",
        ] {
            let ct = encrypt_raw(&KEY, &IV, &pkcs7(plain));
            let got = open_user_info(
                &SessionKey::new(STANDARD.encode(KEY)),
                &STANDARD.encode(ct),
                &STANDARD.encode(IV),
                APPID,
            );
            assert_eq!(got, Err(PhoneError::DecryptFailed), "{plain:?}");
        }
    }

    #[test]
    fn phone_ok_opens() {
        let v = vectors();
        let phone = encrypted(&v, "phone_ok")
            .open(&key_of(&v, "phone_ok"), field(&v, "phone_ok", "appid"))
            .expect("phone_ok opens");
        assert_eq!(
            phone,
            VerifiedPhone {
                phone_number: "13800138000".into(),
                pure_phone_number: "13800138000".into(),
                country_code: "86".into(),
            }
        );
    }

    #[test]
    fn foreign_appid_is_a_watermark_mismatch() {
        let v = vectors();
        let case = "phone_foreign_appid";
        let sealed = encrypted(&v, case);
        let key = key_of(&v, case);
        assert_eq!(
            sealed.open(&key, field(&v, case, "appid")),
            Err(PhoneError::WatermarkMismatch)
        );
        // For the app it does belong to, it opens, and its numeric
        // countryCode becomes a string.
        let phone = sealed
            .open(&key, "wx0000000000000000")
            .expect("opens for its own appid");
        assert_eq!(phone.country_code, "1");
        assert_eq!(phone.pure_phone_number, "4155550123");
        assert_eq!(phone.phone_number, "+1 4155550123");
    }

    #[test]
    fn phone_info_accepts_string_or_number_country_code() {
        for code in [json!("86"), json!(86)] {
            let phone = phone_from_phone_info(&phone_json(code.clone(), APPID), APPID)
                .unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(phone.country_code, "86");
            assert_eq!(phone.pure_phone_number, "13800138000");
        }
        assert_eq!(
            phone_from_phone_info(&phone_json(json!(86), "wx0000000000000000"), APPID),
            Err(PhoneError::WatermarkMismatch)
        );
    }

    #[test]
    fn phone_info_of_the_wrong_shape_is_rejected() {
        let mut empty_pure = phone_json(json!("86"), APPID);
        empty_pure["purePhoneNumber"] = json!("");
        let mut header_breaker = phone_json(json!("86"), APPID);
        header_breaker["purePhoneNumber"] = json!("138\r\nX-WX-OpenID: x");
        let mut no_watermark = phone_json(json!("86"), APPID);
        no_watermark
            .as_object_mut()
            .expect("object")
            .remove("watermark");
        let mut no_pure = phone_json(json!("86"), APPID);
        no_pure
            .as_object_mut()
            .expect("object")
            .remove("purePhoneNumber");
        for bad in [
            empty_pure,
            header_breaker,
            no_watermark,
            no_pure,
            phone_json(json!(-86), APPID),
            phone_json(json!(8.6), APPID),
            phone_json(json!(""), APPID),
            phone_json(Value::Null, APPID),
            json!("13800138000"),
            Value::Null,
        ] {
            assert_eq!(
                phone_from_phone_info(&bad, APPID),
                Err(PhoneError::DecryptFailed),
                "{bad}"
            );
        }
    }

    #[test]
    fn decrypted_empty_pure_phone_number_is_rejected() {
        let plain = br#"{"phoneNumber":"","purePhoneNumber":"","countryCode":"86","watermark":{"timestamp":1,"appid":"wxd930ea5d5a258f4f"}}"#;
        let ct = encrypt_raw(&KEY, &IV, &pkcs7(plain));
        let sealed = EncryptedPhone {
            encrypted_data: STANDARD.encode(ct),
            iv: STANDARD.encode(IV),
        };
        assert_eq!(
            sealed.open(&SessionKey::new(STANDARD.encode(KEY)), APPID),
            Err(PhoneError::DecryptFailed)
        );
    }

    #[test]
    fn plus_turned_into_space_still_decrypts() {
        let v = vectors();
        // An iv whose base64 has '+' (0xf8 → "+"), and the phone_ok plaintext
        // encrypted under it with our own key.
        let iv = [0xf8u8, 0x00, 0x3e, 0xf8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let plain = field(&v, "phone_ok", "plaintext").as_bytes();
        let ct = encrypt_raw(&KEY, &iv, &pkcs7(plain));
        let (ct_b64, iv_b64) = (STANDARD.encode(ct), STANDARD.encode(iv));
        assert!(iv_b64.contains('+'), "{iv_b64}");
        let key = SessionKey::new(STANDARD.encode(KEY));
        assert_eq!(
            decrypt_open_data(&key, &ct_b64.replace('+', " "), &iv_b64.replace('+', " ")),
            Ok(plain.to_vec())
        );

        // The vector's own ciphertext has '+' too.
        let mut sealed = encrypted(&v, "phone_ok");
        assert!(sealed.encrypted_data.contains('+'));
        sealed.encrypted_data = sealed.encrypted_data.replace('+', " ");
        let phone = sealed
            .open(&key_of(&v, "phone_ok"), APPID)
            .expect("opens with spaces");
        assert_eq!(phone.pure_phone_number, "13800138000");
    }

    #[test]
    fn missing_padding_and_line_breaks_still_decrypt() {
        let v = vectors();
        let case = "decrypt_userinfo";
        let (data, iv) = (field(&v, case, "encrypted_data"), field(&v, case, "iv"));
        assert!(data.ends_with('=') && iv.ends_with('='));
        let expected = field(&v, case, "plaintext").as_bytes();
        let key = key_of(&v, case);
        let unpadded =
            decrypt_open_data(&key, data.trim_end_matches('='), iv.trim_end_matches('='));
        assert_eq!(unpadded.as_deref(), Ok(expected));

        // MIME-style line breaks every 76 characters.
        let wrapped: Vec<String> = data
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let wrapped = decrypt_open_data(&key, &wrapped.join("\r\n"), &format!("{iv}\n"));
        assert_eq!(wrapped.as_deref(), Ok(expected));
    }

    #[test]
    fn lenient_base64_accepts_only_the_standard_alphabet() {
        assert_eq!(decode_lenient_base64("+/8="), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient_base64(" /8"), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient_base64("+/\r\n8="), Ok(vec![0xfb, 0xff]));
        assert_eq!(decode_lenient_base64(""), Ok(vec![]));
        for bad in ["-_8=", "+/8=+/8=", "abc!", "a", "+/8=\t", "%2B%2F8%3D"] {
            assert_eq!(decode_lenient_base64(bad), Err(InvalidBase64), "{bad}");
        }
    }

    #[test]
    fn wrong_session_key_is_decrypt_failed() {
        let v = vectors();
        let key_bytes = |case| -> [u8; 16] {
            decode_lenient_base64(field(&v, case, "session_key"))
                .expect("base64")
                .try_into()
                .expect("16 bytes")
        };
        let (phone_key, userinfo_key) = (key_bytes("phone_ok"), key_bytes("decrypt_userinfo"));
        // Wrong keys: 256 uniform ones, every one-bit change of each right
        // key, and each vector's key used on the other vector.
        let mut keys: Vec<[u8; 16]> = (0u8..=255).map(|i| [i; 16]).collect();
        for right in [phone_key, userinfo_key] {
            for bit in 0..128 {
                let mut k = right;
                k[bit / 8] ^= 1 << (bit % 8);
                keys.push(k);
            }
        }
        let sealed = encrypted(&v, "phone_ok");
        let phone_plain = field(&v, "phone_ok", "plaintext").as_bytes();
        let (data, iv) = (
            field(&v, "decrypt_userinfo", "encrypted_data"),
            field(&v, "decrypt_userinfo", "iv"),
        );
        let userinfo_appid = field(&v, "decrypt_userinfo", "appid");

        let mut tried = 0;
        let mut padding_rejected = 0;
        for k in keys.iter().chain([&userinfo_key]) {
            let key = SessionKey::new(STANDARD.encode(k));
            assert_eq!(sealed.open(&key, APPID), Err(PhoneError::DecryptFailed));
            match decrypt_open_data(&key, &sealed.encrypted_data, &sealed.iv) {
                Err(PhoneError::DecryptFailed) => padding_rejected += 1,
                // A wrong key passes strict PKCS#7 with probability ~1/256
                // (last byte 0x01); `open` above still rejects it.
                Ok(garbage) => assert_ne!(garbage, phone_plain),
                Err(other) => panic!("{other:?}"),
            }
            tried += 1;
        }
        for k in keys.iter().chain([&phone_key]) {
            let key = SessionKey::new(STANDARD.encode(k));
            assert_eq!(
                open_user_info(&key, data, iv, userinfo_appid),
                Err(PhoneError::DecryptFailed)
            );
        }
        assert!(
            padding_rejected * 10 >= tried * 9,
            "{padding_rejected}/{tried}"
        );
    }

    #[test]
    fn malformed_ciphertext_iv_and_key_are_bad_input() {
        let v = vectors();
        let case = "phone_ok";
        let key = key_of(&v, case);
        let (data, iv) = (field(&v, case, "encrypted_data"), field(&v, case, "iv"));
        let raw = decode_lenient_base64(data).expect("vector");

        let short = STANDARD.encode(&raw[..raw.len() - 4]);
        let one_block_short = STANDARD.encode(&raw[..raw.len() - 16]);
        assert_eq!(
            decrypt_open_data(&key, &short, iv),
            Err(PhoneError::BadInput("encryptedData"))
        );
        assert_eq!(
            decrypt_open_data(&key, "", iv),
            Err(PhoneError::BadInput("encryptedData"))
        );
        assert_eq!(
            decrypt_open_data(&key, "not base64!", iv),
            Err(PhoneError::BadInput("encryptedData"))
        );
        // Whole blocks but truncated: the padding no longer checks out.
        assert_eq!(
            decrypt_open_data(&key, &one_block_short, iv),
            Err(PhoneError::DecryptFailed)
        );

        let iv12 = STANDARD.encode([7u8; 12]);
        assert_eq!(
            decrypt_open_data(&key, data, &iv12),
            Err(PhoneError::BadInput("iv"))
        );
        assert_eq!(
            decrypt_open_data(&key, data, "r7BX XKk=Lb8"),
            Err(PhoneError::BadInput("iv"))
        );

        for bad_key in [
            STANDARD.encode([1u8; 24]),
            STANDARD.encode([1u8; 15]),
            "x".into(),
            String::new(),
        ] {
            assert_eq!(
                decrypt_open_data(&SessionKey::new(bad_key), data, iv),
                Err(PhoneError::BadInput("session_key"))
            );
        }
    }

    #[test]
    fn tampered_ciphertext_is_decrypt_failed() {
        let v = vectors();
        let case = "phone_ok";
        let key = key_of(&v, case);
        let sealed = encrypted(&v, case);
        let raw = decode_lenient_base64(&sealed.encrypted_data).expect("vector");
        let len = raw.len();

        // Any change in the last block scrambles the whole last plaintext
        // block.
        for pos in len - 16..len {
            let mut t = raw.clone();
            t[pos] ^= 0x40;
            let tampered = EncryptedPhone {
                encrypted_data: STANDARD.encode(&t),
                iv: sealed.iv.clone(),
            };
            assert_eq!(
                tampered.open(&key, APPID),
                Err(PhoneError::DecryptFailed),
                "{pos}"
            );
        }
        // Flipping the last byte of the second-to-last block flips the last
        // pad byte: caught by the padding check itself.
        let mut t = raw.clone();
        t[len - 17] ^= 0x01;
        assert_eq!(
            decrypt_open_data(&key, &STANDARD.encode(&t), &sealed.iv),
            Err(PhoneError::DecryptFailed)
        );
    }

    #[test]
    fn pkcs7_is_checked_strictly() {
        let body = [b'x'; 16];
        let with_last_block = |last: [u8; 16]| [body, last].concat();

        // Controls: well-formed padding of 1 and of a whole block.
        let mut one = [b'y'; 16];
        one[15] = 1;
        assert_eq!(decrypt_made(&with_last_block(one)).map(|p| p.len()), Ok(31));
        assert_eq!(decrypt_made(&with_last_block([16; 16])), Ok(body.to_vec()));
        assert_eq!(decrypt_made(&[16; 16]), Ok(vec![]));

        // Pad byte 0.
        let mut zero = [b'y'; 16];
        zero[15] = 0;
        assert_eq!(
            decrypt_made(&with_last_block(zero)),
            Err(PhoneError::DecryptFailed)
        );
        // Pad byte 17 (longer than a block, though not than the data).
        assert_eq!(
            decrypt_made(&with_last_block([17; 16])),
            Err(PhoneError::DecryptFailed)
        );
        // Pad byte 255.
        assert_eq!(
            decrypt_made(&with_last_block([255; 16])),
            Err(PhoneError::DecryptFailed)
        );
        // Inconsistent pad bytes: claims 3, has 3,2,3.
        let mut mixed = [b'y'; 16];
        mixed[13..].copy_from_slice(&[3, 2, 3]);
        assert_eq!(
            decrypt_made(&with_last_block(mixed)),
            Err(PhoneError::DecryptFailed)
        );
        // Claims 16, one byte off at the start of the block.
        let mut almost = [16u8; 16];
        almost[0] = 15;
        assert_eq!(
            decrypt_made(&with_last_block(almost)),
            Err(PhoneError::DecryptFailed)
        );
    }

    #[test]
    fn raw_data_signature() {
        let v = vectors();
        let case = "rawdata_signature";
        let key = key_of(&v, case);
        let raw = field(&v, case, "raw_data");
        let sig = field(&v, case, "signature");

        assert!(verify_raw_data(raw, &key, sig));
        assert!(verify_raw_data(raw, &key, &sig.to_ascii_uppercase()));

        assert!(!verify_raw_data(&raw.replace("Band", "Banc"), &key, sig));
        let mut changed = sig.to_owned();
        changed.replace_range(..1, if sig.starts_with('0') { "1" } else { "0" });
        assert!(!verify_raw_data(raw, &key, &changed));
        assert!(!verify_raw_data(raw, &key, &sig[..39]));
        assert!(!verify_raw_data(raw, &key, ""));
        assert!(!verify_raw_data(raw, &key_of(&v, "phone_ok"), sig));
    }

    #[test]
    fn display_never_shows_key_material_or_plaintext() {
        let v = vectors();
        let mut errors = vec![
            PhoneError::BadInput("encryptedData"),
            PhoneError::BadInput("iv"),
            PhoneError::BadInput("session_key"),
            PhoneError::DecryptFailed,
            PhoneError::WatermarkMismatch,
        ];
        // And the errors real calls produce.
        let sealed = encrypted(&v, "phone_foreign_appid");
        let key = key_of(&v, "phone_foreign_appid");
        errors.extend(sealed.open(&key, APPID).err());
        errors.extend(
            sealed
                .open(&SessionKey::new(STANDARD.encode([9u8; 16])), APPID)
                .err(),
        );
        errors.extend(
            decrypt_open_data(
                &SessionKey::new("c2hvcnQ="),
                &sealed.encrypted_data,
                &sealed.iv,
            )
            .err(),
        );
        assert_eq!(errors.len(), 8);

        let secrets = [
            field(&v, "phone_ok", "session_key"),
            field(&v, "decrypt_userinfo", "session_key"),
            "c2hvcnQ",
            &sealed.encrypted_data[..12],
            &sealed.iv[..12],
            "4155550123",
            "13800138000",
        ];
        for e in &errors {
            let shown = format!("{e} {e:?}");
            assert!(
                e.to_string().starts_with(|c: char| c.is_ascii_lowercase()),
                "{shown}"
            );
            for s in secrets {
                assert!(!shown.contains(s), "{shown} contains {s}");
            }
        }
        assert!(PhoneError::DecryptFailed
            .to_string()
            .contains("log in again"));
        assert!(PhoneError::BadInput("iv").to_string().contains("iv"));
        assert!(PhoneError::BadInput("encryptedData")
            .to_string()
            .contains("encryptedData"));
    }

    #[test]
    fn verified_phone_is_stored_with_snake_case_fields() {
        let phone = VerifiedPhone {
            phone_number: "+86 13800138000".into(),
            pure_phone_number: "13800138000".into(),
            country_code: "86".into(),
        };
        let stored = serde_json::to_value(&phone).expect("serializes");
        assert_eq!(
            stored,
            json!({"phone_number": "+86 13800138000", "pure_phone_number": "13800138000", "country_code": "86"})
        );
        assert_eq!(
            serde_json::from_value::<VerifiedPhone>(stored).ok(),
            Some(phone)
        );
    }

    #[test]
    fn encrypted_phone_reads_the_legacy_body() {
        let body = r#"{"encryptedData":"abc=","iv":"def="}"#;
        let sealed: EncryptedPhone = serde_json::from_str(body).expect("parses");
        assert_eq!(sealed.encrypted_data, "abc=");
        assert_eq!(sealed.iv, "def=");
    }
}
