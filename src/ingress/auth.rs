//! Optional authentication of webhook requests: what Alertmanager's
//! `http_config.authorization` (Bearer) and `basic_auth` send. Credentials
//! are compared in constant time and never logged or echoed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, Secret};

use super::error::IngressError;

/// `PartialEq` lets a reload tell whether a secret file's contents changed
/// (a comparison of secrets with secrets, never with a request's header).
#[derive(Default, PartialEq, Eq)]
pub struct Auth {
    bearer: Option<Vec<u8>>,
    /// The decoded `username:password` a Basic header must carry.
    basic: Option<Vec<u8>>,
}

impl Auth {
    /// Reads secrets given by file; fails naming the key whose file is unreadable.
    pub fn from_config(config: &AuthConfig) -> Result<Auth, String> {
        let bearer = secret(
            config.bearer_token.as_ref(),
            config.bearer_token_file.as_deref(),
            "auth.bearer_token_file",
        )?;
        let basic = match &config.basic_auth {
            Some(b) => {
                let password = secret(
                    b.password.as_ref(),
                    b.password_file.as_deref(),
                    "auth.basic_auth.password_file",
                )?;
                password.map(|p| [b.username.as_bytes(), b":", &p].concat())
            }
            None => None,
        };
        Ok(Auth { bearer, basic })
    }

    pub fn is_enabled(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), IngressError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let presented = headers
            .get(AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        let ok = match split_scheme(presented) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer") => {
                matches(&self.bearer, token)
            }
            Some((scheme, encoded)) if scheme.eq_ignore_ascii_case(b"basic") => BASE64
                .decode(encoded)
                .is_ok_and(|decoded| matches(&self.basic, &decoded)),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(IngressError::Unauthorized {
                challenge: self.challenge(),
            })
        }
    }

    fn challenge(&self) -> &'static str {
        match (&self.bearer, &self.basic) {
            (Some(_), Some(_)) => "Bearer realm=\"alert-ingest\", Basic realm=\"alert-ingest\"",
            (None, Some(_)) => "Basic realm=\"alert-ingest\"",
            _ => "Bearer realm=\"alert-ingest\"",
        }
    }
}

fn matches(expected: &Option<Vec<u8>>, presented: &[u8]) -> bool {
    expected
        .as_ref()
        .is_some_and(|e| bool::from(e.as_slice().ct_eq(presented)))
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|&b| b == b' ')?;
    Some((&value[..space], value[space + 1..].trim_ascii()))
}

fn secret(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(s) = inline {
        return Ok(Some(s.expose().as_bytes().to_vec()));
    }
    let Some(path) = file else { return Ok(None) };
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{key}: {}: {e}", path.display()))?;
    Ok(Some(
        text.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BasicAuthConfig, Secret};
    use hyper::header::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn both() -> Auth {
        Auth::from_config(&AuthConfig {
            bearer_token: Some(Secret("s3cret-token".into())),
            bearer_token_file: None,
            basic_auth: Some(BasicAuthConfig {
                username: "am".into(),
                password: Some(Secret("pw".into())),
                password_file: None,
            }),
        })
        .unwrap()
    }

    #[test]
    fn disabled_lets_everything_through() {
        assert!(Auth::default().check(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn bearer_and_basic() {
        let auth = both();
        assert!(auth.check(&headers("Bearer s3cret-token")).is_ok());
        assert!(auth.check(&headers("bearer s3cret-token")).is_ok());
        assert!(auth
            .check(&headers(&format!("Basic {}", BASE64.encode("am:pw"))))
            .is_ok());
        for bad in [
            "Bearer s3cret-toke",
            "Bearer",
            "Basic !!!",
            "s3cret-token",
            "Token s3cret-token",
        ] {
            assert!(auth.check(&headers(bad)).is_err(), "{bad}");
        }
        assert!(auth
            .check(&headers(&format!("Basic {}", BASE64.encode("am:pw2"))))
            .is_err());
        let err = auth.check(&HeaderMap::new()).unwrap_err();
        assert!(
            matches!(err, IngressError::Unauthorized { challenge } if challenge.contains("Basic"))
        );
    }

    #[test]
    fn secret_from_file_ignores_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let auth = Auth::from_config(&AuthConfig {
            bearer_token_file: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert!(auth.check(&headers("Bearer from-file")).is_ok());
        let missing = Auth::from_config(&AuthConfig {
            bearer_token_file: Some("/nonexistent/token".into()),
            ..Default::default()
        });
        assert!(missing.err().unwrap().starts_with("auth.bearer_token_file"));
    }
}
