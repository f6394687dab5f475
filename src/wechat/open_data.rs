//! WeChat open data: the `encryptedData`/`iv` decryption (any open data:
//! a phone, WeRun steps, a share's group id), and the phone numbers WeChat
//! vouches for.
//!
//! Pure: no I/O, no clock. The flows hand in the session's [`SessionKey`]
//! and the configured appid; each error maps onto the contract's table by
//! an exhaustive `From` in `crate::error`.
//!
//! Design choices:
//! - An [`EncryptedData`] (ciphertext as received) and a [`Phone`]
//!   (decrypted, watermark checked) are different types; the only ways to a
//!   `Phone` from WeChat data are [`EncryptedData::open`] and
//!   [`Phone::from_phone_info`], both of which check `watermark.appid`.
//! - The phone and any other open data ([`EncryptedData::open_object`])
//!   share one decryption, one watermark check and one freshness check.
//! - PKCS#7 padding is checked strictly (pad byte `n` in `1..=16`, all `n`
//!   bytes equal to `n`), so a stale or wrong `session_key` — the commonest
//!   failure, after a second `wx.login()` rotated it — is reported as
//!   [`OpenDataError::DecryptFailed`] instead of surfacing as garbage.
//! - Base64 is decoded leniently the way mini-programs deliver it
//!   ([`decode_lenient_base64`]): form/URL decoding turns `+` into a space.
//! - Errors never carry key material, ciphertext or plaintext.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use serde::{Deserialize, Serialize};

use crate::phone::{Phone, PhoneInfoError};
use crate::secret::SessionKey;

/// AES block size, and the length of WeChat's session_key and iv.
const BLOCK: usize = 16;

/// Why legacy open data could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OpenDataError {
    /// `encryptedData` is not base64, empty, or not whole AES blocks.
    BadCiphertext,
    /// `iv` is not the base64 of 16 bytes.
    BadIv,
    /// Does not decrypt: strict PKCS#7 check failed, or the plaintext is not
    /// UTF-8 JSON of the expected shape.
    DecryptFailed,
    /// Decrypted fine, but `watermark.appid` is another app's.
    WatermarkMismatch,
    /// Decrypted fine, this app's (or no) watermark, but not a phone
    /// number: the client sent other open data (user info, a run count…).
    NotPhone,
    /// Decrypted fine, but the JSON carries no `watermark.appid`: not open
    /// data WeChat issued (the phone path reports it as
    /// [`NotPhone`](OpenDataError::NotPhone)).
    NoWatermark,
    /// Open data of this app, but its watermark `timestamp` is older than
    /// `PHONE_DATA_MAX_AGE` (or missing): a replay of captured data, or
    /// data kept too long. Counts as a failed attempt, like
    /// [`DecryptFailed`](OpenDataError::DecryptFailed).
    Stale,
}

/// When legacy data is opened, and how old its watermark may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Unix seconds.
    pub(crate) now: i64,
    /// `PHONE_DATA_MAX_AGE`, seconds.
    pub(crate) max_age: u64,
}

impl Freshness {
    /// Whether data watermarked at `timestamp` may still be used: not older
    /// than `max_age`. A timestamp ahead of the clock is accepted (only
    /// WeChat can write one; the clocks may differ).
    pub(crate) fn admits(self, timestamp: Option<i64>) -> bool {
        let max_age = i64::try_from(self.max_age).unwrap_or(i64::MAX);
        timestamp.is_some_and(|t| self.now.saturating_sub(t) <= max_age)
    }
}

/// The input of [`decode_lenient_base64`] is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidBase64;

/// Standard alphabet, `=` padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 as mini-programs actually deliver it: repairs `' '` back to `'+'`
/// (form/URL decoding turns `+` into a space), ignores `\r` and `\n`,
/// accepts missing `=` padding; standard alphabet.
pub(crate) fn decode_lenient_base64(s: &str) -> Result<Vec<u8>, InvalidBase64> {
    let repaired: String = s
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    LENIENT.decode(repaired).map_err(|_| InvalidBase64)
}

/// AES-128-CBC decrypt with strict PKCS#7 (pad byte `n` in `1..=16`, all `n`
/// bytes equal to `n`), iv = 16 bytes.
pub(crate) fn decrypt_open_data(
    session_key: &SessionKey,
    encrypted_data_b64: &str,
    iv_b64: &str,
) -> Result<Vec<u8>, OpenDataError> {
    let mut data =
        decode_lenient_base64(encrypted_data_b64).map_err(|_| OpenDataError::BadCiphertext)?;
    if data.is_empty() || data.len() % BLOCK != 0 {
        return Err(OpenDataError::BadCiphertext);
    }
    let iv: [u8; BLOCK] = decode_lenient_base64(iv_b64)
        .ok()
        .and_then(|iv| iv.try_into().ok())
        .ok_or(OpenDataError::BadIv)?;

    let decryptor = cbc::Decryptor::<aes::Aes128>::new(session_key.bytes().into(), &iv.into());
    // NoPadding over whole blocks cannot fail; the padding is checked below.
    let plain_len = decryptor
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .map_err(|_| OpenDataError::DecryptFailed)?
        .len();
    data.truncate(plain_len);
    let unpadded = strict_pkcs7_len(&data).ok_or(OpenDataError::DecryptFailed)?;
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

/// Ciphertext as received (`{"encryptedData": "...", "iv": "..."}`): not
/// open data until decrypted and its watermark checked. The legacy
/// `/auth/phone` body and the service `decrypt` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EncryptedData {
    pub(crate) encrypted_data: String,
    pub(crate) iv: String,
}

/// The legacy phone body: [`EncryptedData`] opened as a phone.
pub(crate) type EncryptedPhone = EncryptedData;

/// Open data that decrypted to a JSON object carrying this app's
/// watermark; its freshness not yet checked.
struct Watermarked {
    text: String,
    value: serde_json::Value,
}

impl Watermarked {
    /// The data, if its watermark `timestamp` is fresh enough.
    fn fresh(self, freshness: Freshness) -> Result<Self, OpenDataError> {
        let timestamp = self
            .value
            .pointer("/watermark/timestamp")
            .and_then(serde_json::Value::as_i64);
        if freshness.admits(timestamp) {
            Ok(self)
        } else {
            Err(OpenDataError::Stale)
        }
    }
}

impl EncryptedData {
    /// Decrypts, and checks that the plaintext is a JSON object whose
    /// `watermark.appid` is `expected_appid`: the part every kind of open
    /// data shares.
    ///
    /// Decrypted means: the padding checked out and the plaintext is a
    /// JSON object. A wrong key (a stale session_key) almost never gets
    /// this far, and when it does not, the answer is the same
    /// `DecryptFailed` whatever went wrong, so nothing tells a padding
    /// error from a parse error.
    fn open_watermarked(
        &self,
        session_key: &SessionKey,
        expected_appid: &str,
    ) -> Result<Watermarked, OpenDataError> {
        let plain = decrypt_open_data(session_key, &self.encrypted_data, &self.iv)?;
        let text = String::from_utf8(plain).map_err(|_| OpenDataError::DecryptFailed)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or(OpenDataError::DecryptFailed)?;
        match value
            .pointer("/watermark/appid")
            .and_then(serde_json::Value::as_str)
        {
            Some(appid) if appid != expected_appid || expected_appid.is_empty() => {
                Err(OpenDataError::WatermarkMismatch)
            }
            Some(_) => Ok(Watermarked { text, value }),
            None => Err(OpenDataError::NoWatermark),
        }
    }

    /// Any open data (WeRun's `stepInfoList`, a share's `openGId`, a
    /// phone…): decrypts, checks `watermark.appid == expected_appid` and
    /// that `watermark.timestamp` is fresh enough (`freshness`); the
    /// plaintext JSON object, as text, watermark included.
    pub(crate) fn open_object(
        &self,
        session_key: &SessionKey,
        expected_appid: &str,
        freshness: Freshness,
    ) -> Result<String, OpenDataError> {
        let opened = self.open_watermarked(session_key, expected_appid)?;
        Ok(opened.fresh(freshness)?.text)
    }

    /// A phone: as [`open_object`](Self::open_object), and the object is
    /// `{"phoneNumber", "purePhoneNumber", "countryCode" (string or
    /// number), "watermark": {"appid", "timestamp"}}`. Data without a
    /// watermark, or of another shape, is [`OpenDataError::NotPhone`];
    /// freshness is checked last.
    pub(crate) fn open(
        &self,
        session_key: &SessionKey,
        expected_appid: &str,
        freshness: Freshness,
    ) -> Result<Phone, OpenDataError> {
        let opened = self
            .open_watermarked(session_key, expected_appid)
            .map_err(|e| match e {
                OpenDataError::NoWatermark => OpenDataError::NotPhone,
                other => other,
            })?;
        let phone = Phone::from_phone_info(&opened.value, expected_appid).map_err(|e| match e {
            PhoneInfoError::Malformed => OpenDataError::NotPhone,
            PhoneInfoError::WatermarkMismatch => OpenDataError::WatermarkMismatch,
        })?;
        opened.fresh(freshness)?;
        Ok(phone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::PhoneInfoError;
    use aes::cipher::BlockEncryptMut;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{json, Value};

    /// The vectors' watermark instant, with the default window.
    const AT: Freshness = Freshness {
        now: 1_764_000_000,
        max_age: 600,
    };

    /// Test-only copy of the shared vectors; each section names its source
    /// in the file's `_source`.
    fn vectors() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/wechat-vectors.json"))
            .expect("fixture is JSON")
    }

    fn field<'a>(v: &'a Value, case: &str, name: &str) -> &'a str {
        v[case][name]
            .as_str()
            .unwrap_or_else(|| panic!("{case}.{name} in fixture"))
    }

    fn key_of(v: &Value, case: &str) -> SessionKey {
        SessionKey::from_base64(field(v, case, "session_key")).expect("16-byte key")
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

    fn decrypt_made(padded: &[u8]) -> Result<Vec<u8>, OpenDataError> {
        let ct = encrypt_raw(&KEY, &IV, padded);
        decrypt_open_data(
            &SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key"),
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
    fn phone_data_older_than_the_window_is_stale() {
        let v = vectors();
        let (key, appid) = (key_of(&v, "phone_ok"), field(&v, "phone_ok", "appid"));
        let sealed = encrypted(&v, "phone_ok");
        // Watermarked at 1_764_000_000: fresh up to max_age after it, and
        // before it (clock skew).
        for now in [1_764_000_000 - 3_600, 1_764_000_000, 1_764_000_600] {
            let at = Freshness { now, max_age: 600 };
            assert!(sealed.open(&key, appid, at).is_ok(), "{now}");
        }
        for (now, max_age) in [
            (1_764_000_601, 600),
            (1_764_000_061, 60),
            (1_800_000_000, 600),
        ] {
            let at = Freshness { now, max_age };
            assert_eq!(
                sealed.open(&key, appid, at),
                Err(OpenDataError::Stale),
                "{now}"
            );
        }
        // Another app's data stays a mismatch, however old.
        let foreign = encrypted(&v, "phone_foreign_appid");
        let late = Freshness {
            now: 1_800_000_000,
            max_age: 600,
        };
        assert_eq!(
            foreign.open(&key_of(&v, "phone_foreign_appid"), appid, late),
            Err(OpenDataError::WatermarkMismatch)
        );
        // A phone without a timestamp cannot be shown fresh.
        let key = SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key");
        let mut plain = phone_json(json!("86"), APPID);
        plain["watermark"]
            .as_object_mut()
            .expect("watermark")
            .remove("timestamp");
        let iv = [3u8; 16];
        let sealed = EncryptedPhone {
            encrypted_data: STANDARD.encode(encrypt_raw(
                &KEY,
                &iv,
                &pkcs7(plain.to_string().as_bytes()),
            )),
            iv: STANDARD.encode(iv),
        };
        assert_eq!(sealed.open(&key, APPID, AT), Err(OpenDataError::Stale));
    }

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

    /// Seals `plain` under the tests' key.
    fn seal(plain: &Value) -> EncryptedData {
        let iv = [5u8; 16];
        EncryptedData {
            encrypted_data: STANDARD.encode(encrypt_raw(
                &KEY,
                &iv,
                &pkcs7(plain.to_string().as_bytes()),
            )),
            iv: STANDARD.encode(iv),
        }
    }

    fn test_key() -> SessionKey {
        SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key")
    }

    /// WeChat's published sample opens through the generic path to its
    /// exact plaintext (its watermark is of 2016: any age admits it).
    #[test]
    fn the_official_sample_opens_as_open_data() {
        let v = vectors();
        let case = "decrypt_userinfo";
        let appid = field(&v, case, "appid");
        let any_age = Freshness {
            now: 1_477_314_187,
            max_age: 600,
        };
        let text = encrypted(&v, case)
            .open_object(&key_of(&v, case), appid, any_age)
            .expect("opens");
        assert_eq!(text, field(&v, case, "plaintext"));
        // The same data is stale today, another app's for another appid,
        // and not a phone for the phone path.
        let today = Freshness {
            now: 1_764_000_000,
            max_age: 600,
        };
        assert_eq!(
            encrypted(&v, case).open_object(&key_of(&v, case), appid, today),
            Err(OpenDataError::Stale)
        );
        assert_eq!(
            encrypted(&v, case).open_object(&key_of(&v, case), APPID, any_age),
            Err(OpenDataError::WatermarkMismatch)
        );
        assert_eq!(
            encrypted(&v, case).open(&key_of(&v, case), appid, any_age),
            Err(OpenDataError::NotPhone)
        );
        // A phone is open data too.
        let phone = encrypted(&v, "phone_ok")
            .open_object(&key_of(&v, "phone_ok"), APPID, AT)
            .expect("opens");
        assert_eq!(phone, field(&v, "phone_ok", "plaintext"));
    }

    /// WeRun's steps and a share's group id open; JSON without a
    /// watermark, or with one of another app, or not an object, does not;
    /// the wrong key is `DecryptFailed` whatever the data.
    #[test]
    fn generic_open_data_checks_the_watermark_and_the_shape() {
        let werun = json!({
            "stepInfoList": [{"timestamp": 1763913600, "step": 8000}],
            "watermark": {"timestamp": 1764000000, "appid": APPID}
        });
        let text = seal(&werun)
            .open_object(&test_key(), APPID, AT)
            .expect("opens");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), werun);
        let share =
            json!({"openGId": "tGabc", "watermark": {"timestamp": 1764000000, "appid": APPID}});
        assert!(seal(&share).open_object(&test_key(), APPID, AT).is_ok());
        let rows = [
            (json!({"openGId": "tGabc"}), OpenDataError::NoWatermark),
            (
                json!({"openGId": "g", "watermark": {"timestamp": 1764000000}}),
                OpenDataError::NoWatermark,
            ),
            (
                json!({"openGId": "g", "watermark": {"appid": 7}}),
                OpenDataError::NoWatermark,
            ),
            (
                json!({"openGId": "g", "watermark": {"timestamp": 1764000000, "appid": "wx0000000000000000"}}),
                OpenDataError::WatermarkMismatch,
            ),
            (
                json!({"openGId": "g", "watermark": {"appid": APPID}}),
                OpenDataError::Stale,
            ),
            (
                json!({"openGId": "g", "watermark": {"timestamp": "1764000000", "appid": APPID}}),
                OpenDataError::Stale,
            ),
            (json!([1, 2]), OpenDataError::DecryptFailed),
            (json!("a string"), OpenDataError::DecryptFailed),
        ];
        for (plain, want) in rows {
            assert_eq!(
                seal(&plain).open_object(&test_key(), APPID, AT),
                Err(want),
                "{plain}"
            );
        }
        // An empty configured appid matches nothing.
        assert_eq!(
            seal(&werun).open_object(&test_key(), "", AT),
            Err(OpenDataError::WatermarkMismatch)
        );
        // Another key: the same answer as garbage, whatever the data.
        let other = SessionKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").expect("16 bytes");
        assert_eq!(
            seal(&werun).open_object(&other, APPID, AT),
            Err(OpenDataError::DecryptFailed)
        );
    }

    #[test]
    fn phone_ok_opens() {
        let v = vectors();
        let phone = encrypted(&v, "phone_ok")
            .open(&key_of(&v, "phone_ok"), field(&v, "phone_ok", "appid"), AT)
            .expect("phone_ok opens");
        assert_eq!(phone, Phone::for_tests("13800138000", "13800138000", "86"));
    }

    #[test]
    fn foreign_appid_is_a_watermark_mismatch() {
        let v = vectors();
        let case = "phone_foreign_appid";
        let sealed = encrypted(&v, case);
        let key = key_of(&v, case);
        assert_eq!(
            sealed.open(&key, field(&v, case, "appid"), AT),
            Err(OpenDataError::WatermarkMismatch)
        );
        // For the app it does belong to, it opens, and its numeric
        // countryCode becomes a string.
        let phone = sealed
            .open(&key, "wx0000000000000000", AT)
            .expect("opens for its own appid");
        assert_eq!(phone.country_code(), "1");
        assert_eq!(phone.pure_phone_number(), "4155550123");
        assert_eq!(phone.phone_number(), Some("+1 4155550123"));
    }

    #[test]
    fn phone_info_accepts_string_or_number_country_code() {
        for code in [json!("86"), json!(86)] {
            let phone = Phone::from_phone_info(&phone_json(code.clone(), APPID), APPID)
                .unwrap_or_else(|e| panic!("{code}: {e:?}"));
            assert_eq!(phone.country_code(), "86");
            assert_eq!(phone.pure_phone_number(), "13800138000");
        }
        assert_eq!(
            Phone::from_phone_info(&phone_json(json!(86), "wx0000000000000000"), APPID),
            Err(PhoneInfoError::WatermarkMismatch)
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
                Phone::from_phone_info(&bad, APPID),
                Err(PhoneInfoError::Malformed),
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
            sealed.open(
                &SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key"),
                APPID,
                AT
            ),
            Err(OpenDataError::NotPhone)
        );
    }

    #[test]
    fn data_that_decrypts_but_is_not_a_phone_is_not_phone_not_decrypt_failed() {
        let seal = |plain: &[u8]| EncryptedPhone {
            encrypted_data: STANDARD.encode(encrypt_raw(&KEY, &IV, &pkcs7(plain))),
            iv: STANDARD.encode(IV),
        };
        let key = SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key");
        for plain in [
            // getUserInfo data of this app.
            &br#"{"openId":"o1","nickName":"x","watermark":{"timestamp":1,"appid":"wxd930ea5d5a258f4f"}}"#[..],
            br#"{"phoneNumber":"138"}"#,
            br#"{"watermark":{"appid":"wxd930ea5d5a258f4f"}}"#,
            br#"{"phoneNumber":"1","purePhoneNumber":"x","countryCode":"86","watermark":{"appid":"wxd930ea5d5a258f4f"}}"#,
        ] {
            assert_eq!(
                seal(plain).open(&key, APPID, AT),
                Err(OpenDataError::NotPhone),
                "{}",
                String::from_utf8_lossy(plain)
            );
        }
        // Another app's data stays a watermark mismatch, phone or not.
        let foreign =
            br#"{"openId":"o1","watermark":{"timestamp":1,"appid":"wx0000000000000000"}}"#;
        assert_eq!(
            seal(foreign).open(&key, APPID, AT),
            Err(OpenDataError::WatermarkMismatch)
        );
        // What is not a JSON object did not decrypt.
        for plain in [&b"[1,2]"[..], b"\xff\xfe", b"13800138000", b"{\"a\":"] {
            assert_eq!(
                seal(plain).open(&key, APPID, AT),
                Err(OpenDataError::DecryptFailed)
            );
        }
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
        let key = SessionKey::from_base64(&STANDARD.encode(KEY)).expect("16-byte key");
        assert_eq!(
            decrypt_open_data(&key, &ct_b64.replace('+', " "), &iv_b64.replace('+', " ")),
            Ok(plain.to_vec())
        );

        // The vector's own ciphertext has '+' too.
        let mut sealed = encrypted(&v, "phone_ok");
        assert!(sealed.encrypted_data.contains('+'));
        sealed.encrypted_data = sealed.encrypted_data.replace('+', " ");
        let phone = sealed
            .open(&key_of(&v, "phone_ok"), APPID, AT)
            .expect("opens with spaces");
        assert_eq!(phone.pure_phone_number(), "13800138000");
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
        let userinfo_plain = field(&v, "decrypt_userinfo", "plaintext").as_bytes();

        let mut tried = 0;
        let mut padding_rejected = 0;
        for k in keys.iter().chain([&userinfo_key]) {
            let key = SessionKey::from_base64(&STANDARD.encode(k)).expect("16-byte key");
            assert_eq!(
                sealed.open(&key, APPID, AT),
                Err(OpenDataError::DecryptFailed)
            );
            match decrypt_open_data(&key, &sealed.encrypted_data, &sealed.iv) {
                Err(OpenDataError::DecryptFailed) => padding_rejected += 1,
                // A wrong key passes strict PKCS#7 with probability ~1/256
                // (last byte 0x01); `open` above still rejects it.
                Ok(garbage) => assert_ne!(garbage, phone_plain),
                Err(other) => panic!("{other:?}"),
            }
            tried += 1;
        }
        for k in keys.iter().chain([&phone_key]) {
            let key = SessionKey::from_base64(&STANDARD.encode(k)).expect("16-byte key");
            assert_ne!(
                decrypt_open_data(&key, data, iv).ok().as_deref(),
                Some(userinfo_plain)
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
            Err(OpenDataError::BadCiphertext)
        );
        assert_eq!(
            decrypt_open_data(&key, "", iv),
            Err(OpenDataError::BadCiphertext)
        );
        assert_eq!(
            decrypt_open_data(&key, "not base64!", iv),
            Err(OpenDataError::BadCiphertext)
        );
        // Whole blocks but truncated: the padding no longer checks out.
        assert_eq!(
            decrypt_open_data(&key, &one_block_short, iv),
            Err(OpenDataError::DecryptFailed)
        );

        let iv12 = STANDARD.encode([7u8; 12]);
        assert_eq!(
            decrypt_open_data(&key, data, &iv12),
            Err(OpenDataError::BadIv)
        );
        assert_eq!(
            decrypt_open_data(&key, data, "r7BX XKk=Lb8"),
            Err(OpenDataError::BadIv)
        );

        for bad_key in [
            STANDARD.encode([1u8; 24]),
            STANDARD.encode([1u8; 15]),
            "x".into(),
            String::new(),
        ] {
            // A key of the wrong size never becomes a SessionKey at all.
            assert!(SessionKey::from_base64(&bad_key).is_none(), "{bad_key}");
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
                tampered.open(&key, APPID, AT),
                Err(OpenDataError::DecryptFailed),
                "{pos}"
            );
        }
        // Flipping the last byte of the second-to-last block flips the last
        // pad byte: caught by the padding check itself.
        let mut t = raw.clone();
        t[len - 17] ^= 0x01;
        assert_eq!(
            decrypt_open_data(&key, &STANDARD.encode(&t), &sealed.iv),
            Err(OpenDataError::DecryptFailed)
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
            Err(OpenDataError::DecryptFailed)
        );
        // Pad byte 17 (longer than a block, though not than the data).
        assert_eq!(
            decrypt_made(&with_last_block([17; 16])),
            Err(OpenDataError::DecryptFailed)
        );
        // Pad byte 255.
        assert_eq!(
            decrypt_made(&with_last_block([255; 16])),
            Err(OpenDataError::DecryptFailed)
        );
        // Inconsistent pad bytes: claims 3, has 3,2,3.
        let mut mixed = [b'y'; 16];
        mixed[13..].copy_from_slice(&[3, 2, 3]);
        assert_eq!(
            decrypt_made(&with_last_block(mixed)),
            Err(OpenDataError::DecryptFailed)
        );
        // Claims 16, one byte off at the start of the block.
        let mut almost = [16u8; 16];
        almost[0] = 15;
        assert_eq!(
            decrypt_made(&with_last_block(almost)),
            Err(OpenDataError::DecryptFailed)
        );
    }

    #[test]
    fn errors_never_show_key_material_or_plaintext() {
        let v = vectors();
        let mut errors = vec![
            OpenDataError::BadCiphertext,
            OpenDataError::BadIv,
            OpenDataError::DecryptFailed,
            OpenDataError::WatermarkMismatch,
        ];
        // And the errors real calls produce.
        let sealed = encrypted(&v, "phone_foreign_appid");
        let key = key_of(&v, "phone_foreign_appid");
        errors.extend(sealed.open(&key, APPID, AT).err());
        errors.extend(
            sealed
                .open(
                    &SessionKey::from_base64(&STANDARD.encode([9u8; 16])).expect("16-byte key"),
                    APPID,
                    AT,
                )
                .err(),
        );
        assert_eq!(errors.len(), 6);

        let secrets = [
            field(&v, "phone_ok", "session_key"),
            field(&v, "decrypt_userinfo", "session_key"),
            &sealed.encrypted_data[..12],
            &sealed.iv[..12],
            "4155550123",
            "13800138000",
        ];
        // The bodies these map to are static text (`crate::error`'s tests).
        for e in errors {
            let shown = format!("{e:?}");
            for s in secrets {
                assert!(!shown.contains(s), "{shown} contains {s}");
            }
        }
    }

    #[test]
    fn encrypted_phone_reads_the_legacy_body() {
        let body = r#"{"encryptedData":"abc=","iv":"def="}"#;
        let sealed: EncryptedPhone = serde_json::from_str(body).expect("parses");
        assert_eq!(sealed.encrypted_data, "abc=");
        assert_eq!(sealed.iv, "def=");
    }
}
