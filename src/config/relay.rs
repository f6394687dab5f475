//! The WeChat relay's path policy (`/auth/service/wechat/{path}`): which
//! paths are well-formed, which are always refused (they hand out
//! credentials or session keys), and `WX_RELAY_PATHS`, the optional
//! allow-list that narrows the rest. Pure, so that the configuration
//! (which checks `WX_RELAY_PATHS` once) and the relay (which checks each
//! request) apply one and the same rule.

/// Paths the relay never calls, as segment prefixes compared without
/// regard to case: the credential endpoints (`cgi-bin/token` and
/// `cgi-bin/stable_token` hand out the app's access_token; `cgi-bin/ticket`
/// JS-SDK tickets; `cgi-bin/component` the third-party platform's
/// tokens), everything under `sns` (code2Session hands out session keys,
/// and needs the AppSecret), and the session-key endpoints, which the
/// service endpoints wrap.
pub(crate) const REFUSED: [&str; 7] = [
    "cgi-bin/token",
    "cgi-bin/stable_token",
    "cgi-bin/ticket",
    "cgi-bin/component",
    "sns",
    "wxa/checksession",
    "wxa/resetusersessionkey",
];

/// Why a path may not be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRefusal {
    /// Not a plain path: a character other than `[A-Za-z0-9_./-]` (no
    /// `%`, so nothing is decoded anywhere), a leading `/`, an empty,
    /// `.` or `..` segment, or a trailing `/`.
    Malformed,
    /// Under one of [`REFUSED`].
    HandsOutCredentials,
    /// `WX_RELAY_PATHS` is set and does not list it.
    NotListed,
}

/// Whether `path` is plain: non-empty segments of `[A-Za-z0-9_.-]`,
/// none of them `.` or `..`, joined by single `/`s, with none in front or
/// at the end.
pub(crate) fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        })
}

/// Whether `path`'s leading segments are `prefix`'s, compared without
/// regard to case: `wxa/msg_sec_check` covers `wxa/msg_sec_check` and
/// `wxa/msg_sec_check/x`, never `wxa/msg_sec_checkX`.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    let mut segs = path.split('/');
    prefix.split('/').all(|want| {
        segs.next()
            .is_some_and(|seg| seg.eq_ignore_ascii_case(want))
    })
}

/// Whether `path` is under one of [`REFUSED`].
pub(crate) fn hands_out_credentials(path: &str) -> bool {
    REFUSED.iter().any(|refused| under(path, refused))
}

/// `WX_RELAY_PATHS`: `None` when unset (every plain path that is not
/// refused), else the prefixes it lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RelayPaths(Option<Vec<String>>);

impl RelayPaths {
    /// Parses the variable: comma-separated prefixes, each a plain path
    /// (a `/` before or after it is dropped) that is not refused anyway.
    pub(crate) fn parse(v: Option<&str>) -> Result<Self, &'static str> {
        let Some(v) = v else {
            return Ok(RelayPaths(None));
        };
        let prefixes: Vec<String> = v
            .split(',')
            .map(|p| p.trim().trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if prefixes.is_empty() {
            return Err("lists no path (comma-separated WeChat API paths, e.g. wxa/msg_sec_check)");
        }
        if !prefixes.iter().all(|p| is_plain(p)) {
            return Err("must be comma-separated WeChat API paths of letters, digits, _ . - and /");
        }
        if prefixes.iter().any(|p| hands_out_credentials(p)) {
            return Err("lists a path the relay always refuses (credentials or session keys)");
        }
        Ok(RelayPaths(Some(prefixes)))
    }

    /// Whether the relay may call `path`.
    pub(crate) fn check(&self, path: &str) -> Result<(), PathRefusal> {
        if !is_plain(path) {
            return Err(PathRefusal::Malformed);
        }
        if hands_out_credentials(path) {
            return Err(PathRefusal::HandsOutCredentials);
        }
        match &self.0 {
            Some(listed) if !listed.iter().any(|p| under(path, p)) => Err(PathRefusal::NotListed),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> RelayPaths {
        RelayPaths::parse(None).expect("unset")
    }

    #[test]
    fn plain_api_paths_pass() {
        for p in [
            "wxa/msg_sec_check",
            "cgi-bin/message/subscribe/send",
            "wxa/getwxacodeunlimit",
            "wxa/business/getuserphonenumber",
            "cgi-bin/tokenizer",
            "cgi-bin/token_x/y",
            "snsapi/x",
            "wxa/checksessionx",
            "datacube/getweanalysisappiddailysummarytrend",
            "a.b-c_d/e",
        ] {
            assert_eq!(all().check(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn credential_and_session_key_paths_are_refused_whatever_their_case() {
        for p in [
            "cgi-bin/token",
            "CGI-BIN/Token",
            "Cgi-Bin/TOKEN",
            "cgi-bin/token/x",
            "cgi-bin/stable_token",
            "cgi-bin/STABLE_TOKEN",
            "cgi-bin/ticket/getticket",
            "cgi-bin/component/api_component_token",
            "sns",
            "sns/jscode2session",
            "SNS/JSCODE2SESSION",
            "sns/oauth2/access_token",
            "wxa/checksession",
            "wxa/CheckSession",
            "wxa/resetusersessionkey",
            "wxa/resetusersessionkey/x",
        ] {
            assert_eq!(all().check(p), Err(PathRefusal::HandsOutCredentials), "{p}");
        }
    }

    #[test]
    fn tricks_that_could_reach_a_refused_path_are_malformed() {
        for p in [
            "",
            "/cgi-bin/token",
            "sns/../cgi-bin/token",
            "wxa/../sns/jscode2session",
            "./cgi-bin/token",
            "cgi-bin/./token",
            "cgi-bin//token",
            "cgi-bin/token/",
            "cgi-bin/%74oken",
            "%2e%2e/cgi-bin/token",
            "wxa/%2E%2E/sns",
            "cgi-bin/stable_token?x",
            "cgi-bin/stable_token#x",
            "cgi-bin/token;x",
            "cgi-bin\\token",
            "cgi-bin/ token",
            "cgi-bin/token\0",
            "cgi-bin/tökén",
            "..",
            ".",
            "wxa/..",
        ] {
            assert_eq!(all().check(p), Err(PathRefusal::Malformed), "{p:?}");
        }
    }

    #[test]
    fn the_allow_list_narrows_by_whole_segments() {
        let listed = RelayPaths::parse(Some(" wxa/msg_sec_check, /cgi-bin/message/subscribe/ ,"))
            .expect("valid");
        for p in [
            "wxa/msg_sec_check",
            "WXA/msg_sec_check",
            "wxa/msg_sec_check/x",
            "cgi-bin/message/subscribe/send",
        ] {
            assert_eq!(listed.check(p), Ok(()), "{p}");
        }
        for p in [
            "wxa/msg_sec_checkX",
            "wxa/msg_sec",
            "wxa",
            "cgi-bin/message/subscribed",
            "cgi-bin/message",
            "wxa/getwxacode",
        ] {
            assert_eq!(listed.check(p), Err(PathRefusal::NotListed), "{p}");
        }
        // Listing never lifts a refusal, nor admits a malformed path.
        let broad = RelayPaths::parse(Some("cgi-bin,wxa")).expect("valid");
        assert_eq!(
            broad.check("cgi-bin/token"),
            Err(PathRefusal::HandsOutCredentials)
        );
        assert_eq!(
            broad.check("wxa/checksession"),
            Err(PathRefusal::HandsOutCredentials)
        );
        assert_eq!(broad.check("wxa//x"), Err(PathRefusal::Malformed));
        assert_eq!(broad.check("cgi-bin/openapi/quota/get"), Ok(()));
    }

    #[test]
    fn bad_allow_lists_are_configuration_errors() {
        for bad in [
            ",",
            " , / ,",
            "wxa/../sns",
            "wxa/%2e",
            "wxa//x",
            "wxa msg",
            "sns",
            "sns/jscode2session",
            "wxa/msg_sec_check,CGI-BIN/stable_token",
            "cgi-bin/ticket/getticket",
        ] {
            assert!(RelayPaths::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// Pieces a caller could assemble a path from to reach a refused one.
    fn piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "cgi-bin",
            "CGI-BIN",
            "token",
            "Token",
            "stable_token",
            "ticket",
            "component",
            "sns",
            "SNS",
            "wxa",
            "checksession",
            "resetusersessionkey",
            "msg_sec_check",
            "x",
            "",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "%2f",
            "%74oken",
            "/",
            "//",
            "\\",
            ";",
            "?",
            "#",
            " ",
            "é",
            "token.",
            "-",
            "_",
        ])
        .prop_map(str::to_string)
    }

    /// `path` as a server that decodes escapes and resolves dot segments
    /// would read it, lower-cased.
    fn as_a_server_reads_it(path: &str) -> String {
        let decoded: String = form_urlencoded::parse(format!("x={path}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let mut out: Vec<&str> = Vec::new();
        for seg in decoded.split(['/', '\\']) {
            match seg {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                s => out.push(s),
            }
        }
        out.join("/").to_ascii_lowercase()
    }

    proptest! {
        #[test]
        fn nothing_that_passes_reads_as_a_refused_path(
            pieces in prop::collection::vec(piece(), 1..8),
            seps in prop::collection::vec(prop::bool::ANY, 8),
        ) {
            let mut path = String::new();
            for (i, p) in pieces.iter().enumerate() {
                if i > 0 && seps[i] {
                    path.push('/');
                }
                path.push_str(p);
            }
            if RelayPaths::default().check(&path).is_ok() {
                // What passes is read the same by any server, and is not
                // a refused path however it is read.
                let read = as_a_server_reads_it(&path);
                prop_assert_eq!(&read, &path.to_ascii_lowercase());
                for refused in REFUSED {
                    prop_assert!(!under(&read, refused), "{} reads as {}", path, read);
                }
            }
        }
    }
}
