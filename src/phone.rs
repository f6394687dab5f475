//! The phone number: one type for every place the worker holds one.
//!
//! A [`Phone`] is made only by verification — [`Phone::from_phone_info`],
//! which checks `watermark.appid` and the fields' shape, for the phone API's
//! reply and for decrypted legacy open data
//! (`wechat::open_data::EncryptedPhone::open`) — or read back from the
//! worker's own state: a stored record (its `Deserialize`) or the claims of
//! a token the worker signed ([`Phone::from_claims`]). Its fields are
//! private; reading back checks the same shape, so every `Phone` has
//! - `pure_phone_number` and `country_code`: non-empty ASCII digits;
//! - `phone_number` (WeChat's display form, `+1 4155550123`): non-empty,
//!   without control characters, when known. Tokens do not carry it, so a
//!   phone read back from one has none.
//!
//! They end up in KV keys and request headers.
//!
//! Serialized forms (pinned by the tests): a stored record is
//! `{"phone_number", "pure_phone_number", "country_code"}`; tokens carry the
//! pure number and the country code as two claims of their own.

use serde::{Deserialize, Serialize};

/// A phone WeChat vouched for.
///
/// Two phones are equal when they are the same number: the same country
/// code and pure number. The display form is presentation (and a phone read
/// back from a token has none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "Stored", try_from = "Stored")]
pub(crate) struct Phone {
    /// `phoneNumber`, when known.
    display: Option<String>,
    /// `purePhoneNumber`.
    pure: String,
    country_code: String,
}

impl PartialEq for Phone {
    fn eq(&self, other: &Self) -> bool {
        self.country_code == other.country_code && self.pure == other.pure
    }
}

impl Eq for Phone {}

impl std::hash::Hash for Phone {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.country_code.hash(state);
        self.pure.hash(state);
    }
}

/// Why a getuserphonenumber `phone_info` (or decrypted open data) is not a
/// phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneInfoError {
    /// Not the documented shape: WeChat's reply is unusable.
    Malformed,
    /// Another app's watermark.
    WatermarkMismatch,
}

/// What the worker wrote is not a phone (a record or claims it never made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotAPhone;

impl std::fmt::Display for NotAPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a phone")
    }
}

impl Phone {
    /// The phone in a getuserphonenumber `phone_info` object or in decrypted
    /// open data (same field names, `countryCode` string or number),
    /// provided `watermark.appid` is `expected_appid`.
    pub(crate) fn from_phone_info(
        phone_info: &serde_json::Value,
        expected_appid: &str,
    ) -> Result<Phone, PhoneInfoError> {
        let info = PhoneInfo::deserialize(phone_info).map_err(|_| PhoneInfoError::Malformed)?;
        if expected_appid.is_empty() || info.watermark.appid != expected_appid {
            return Err(PhoneInfoError::WatermarkMismatch);
        }
        let CountryCode(country_code) = info.country_code;
        Phone::checked(
            Some(info.phone_number),
            info.pure_phone_number,
            country_code,
        )
        .map_err(|NotAPhone| PhoneInfoError::Malformed)
    }

    /// Read back from a token the worker signed: its `phone` (the pure
    /// number) and country-code claims. No phone claim, no phone.
    pub(crate) fn from_claims(
        pure_phone_number: Option<String>,
        country_code: Option<String>,
    ) -> Result<Option<Phone>, NotAPhone> {
        match (pure_phone_number, country_code) {
            (None, _) => Ok(None),
            (Some(pure), Some(cc)) => Phone::checked(None, pure, cc).map(Some),
            (Some(_), None) => Err(NotAPhone),
        }
    }

    /// The claims a token carries for `phone`: the pure number and the
    /// country code.
    pub(crate) fn to_claims(phone: Option<&Phone>) -> (Option<String>, Option<String>) {
        match phone {
            Some(p) => (Some(p.pure.clone()), Some(p.country_code.clone())),
            None => (None, None),
        }
    }

    fn checked(
        phone_number: Option<String>,
        pure_phone_number: String,
        country_code: String,
    ) -> Result<Phone, NotAPhone> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let printable = |s: &String| !s.is_empty() && !s.chars().any(char::is_control);
        if !digits(&pure_phone_number)
            || !digits(&country_code)
            || !phone_number.as_ref().is_none_or(printable)
        {
            return Err(NotAPhone);
        }
        Ok(Phone {
            display: phone_number,
            pure: pure_phone_number,
            country_code,
        })
    }

    /// WeChat's display form (`phoneNumber`), when known (not read back from
    /// a token).
    pub(crate) fn phone_number(&self) -> Option<&str> {
        self.display.as_deref()
    }

    /// The number without its country code (`purePhoneNumber`).
    pub(crate) fn pure_phone_number(&self) -> &str {
        &self.pure
    }

    /// The country code, digits only (`86`).
    pub(crate) fn country_code(&self) -> &str {
        &self.country_code
    }

    /// A phone as WeChat would vouch for it, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(
        phone_number: &str,
        pure_phone_number: &str,
        country_code: &str,
    ) -> Self {
        Phone::checked(
            Some(phone_number.into()),
            pure_phone_number.into(),
            country_code.into(),
        )
        .expect("a well-formed test phone")
    }
}

/// The stored form (KV records, the authority's state and wire).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number: Option<String>,
    pure_phone_number: String,
    country_code: String,
}

impl From<Phone> for Stored {
    fn from(p: Phone) -> Self {
        Stored {
            phone_number: p.display,
            pure_phone_number: p.pure,
            country_code: p.country_code,
        }
    }
}

impl TryFrom<Stored> for Phone {
    type Error = NotAPhone;
    /// Every stored phone came from WeChat with its display form.
    fn try_from(s: Stored) -> Result<Self, NotAPhone> {
        let number = s.phone_number.ok_or(NotAPhone)?;
        Phone::checked(Some(number), s.pure_phone_number, s.country_code)
    }
}

/// Serializes a phone as the contract's replies show it: `phoneNumber`,
/// `purePhoneNumber`, `countryCode` (for `serialize_with`, which hands it
/// a `&Option`).
#[allow(clippy::ref_option)]
pub(crate) fn reply_form<S: serde::Serializer>(
    phone: &Option<Phone>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Reply<'a> {
        phone_number: &'a str,
        pure_phone_number: &'a str,
        country_code: &'a str,
    }
    phone
        .as_ref()
        .map(|p| Reply {
            phone_number: p.phone_number().unwrap_or(&p.pure),
            pure_phone_number: &p.pure,
            country_code: &p.country_code,
        })
        .serialize(s)
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

/// `countryCode`, which WeChat sends as a string (`"86"`) or a number (`86`).
///
/// Read by hand: `#[serde(untagged)]` buffers the value in serde's
/// `Content` first, which the wasm pays for in size.
struct CountryCode(String);

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CountryCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a country code")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CountryCode, E> {
                Ok(CountryCode(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<CountryCode, E> {
                Ok(CountryCode(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `timestamp` is not read here (this module has no clock): legacy data's
/// age is checked where it is opened (`wechat::open_data`, against
/// `PHONE_DATA_MAX_AGE`); the phone API's `code` is single-use anyway.
#[derive(Deserialize)]
struct Watermark {
    appid: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stored_phone_keeps_its_snake_case_form() {
        let phone = Phone::for_tests("+86 13800138000", "13800138000", "86");
        let stored = serde_json::to_string(&phone).expect("serializes");
        assert_eq!(
            stored,
            r#"{"phone_number":"+86 13800138000","pure_phone_number":"13800138000","country_code":"86"}"#
        );
        assert_eq!(serde_json::from_str::<Phone>(&stored).ok(), Some(phone));
    }

    #[test]
    fn replies_show_the_contracts_names() {
        #[derive(Serialize)]
        struct R {
            #[serde(serialize_with = "reply_form")]
            phone: Option<Phone>,
        }
        let phone = Some(Phone::for_tests("+86 13800138000", "13800138000", "86"));
        assert_eq!(
            serde_json::to_string(&R { phone }).expect("json"),
            r#"{"phone":{"phoneNumber":"+86 13800138000","purePhoneNumber":"13800138000","countryCode":"86"}}"#
        );
        assert_eq!(
            serde_json::to_string(&R { phone: None }).expect("json"),
            r#"{"phone":null}"#
        );
    }

    #[test]
    fn reading_back_checks_the_shape() {
        for bad in [
            json!({"phone_number": "1", "pure_phone_number": "", "country_code": "86"}),
            json!({"phone_number": "1", "pure_phone_number": "138\r\n", "country_code": "86"}),
            json!({"phone_number": "1", "pure_phone_number": "138", "country_code": "+86"}),
            json!({"phone_number": "", "pure_phone_number": "138", "country_code": "86"}),
            json!({"phone_number": "1\n", "pure_phone_number": "138", "country_code": "86"}),
            json!({"pure_phone_number": "138"}),
        ] {
            assert!(
                serde_json::from_value::<Phone>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn claims_carry_the_pure_number_and_the_country_code() {
        let phone = Phone::for_tests("+86 13800138000", "13800138000", "86");
        let (pure, cc) = Phone::to_claims(Some(&phone));
        assert_eq!(pure.as_deref(), Some("13800138000"));
        assert_eq!(cc.as_deref(), Some("86"));
        let back = Phone::from_claims(pure, cc)
            .expect("reads back")
            .expect("a phone");
        assert_eq!(back.pure_phone_number(), "13800138000");
        assert_eq!(back.country_code(), "86");
        assert_eq!(back.phone_number(), None);
        // The same number, whether or not its display form is known.
        assert_eq!(back, phone);
        assert_ne!(back, Phone::for_tests("13800138000", "13800138000", "1"));
        assert_eq!(Phone::to_claims(None), (None, None));
        assert_eq!(Phone::from_claims(None, None), Ok(None));
        assert_eq!(Phone::from_claims(Some("138".into()), None), Err(NotAPhone));
        assert_eq!(
            Phone::from_claims(Some("13 8".into()), Some("86".into())),
            Err(NotAPhone)
        );
    }
}
