//! `ApiJson`: the only way a request body enters the server. It enforces the API's transport
//! rules before any handler runs: `application/json` or 415, the size limit or 413, strict UTF-8
//! JSON with no unknown, duplicate or missing fields and no trailing bytes or 400. Its messages
//! never echo request values (a code sent as a number must not come back in the error).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use otpgate_api::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    // Only UTF-8 is JSON (RFC 8259); any other declared charset is refused rather than guessed.
    parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "The request body must be JSON, sent with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "The request body is too large.")
            } else {
                ApiError::invalid_request("The request body could not be read.")
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a whole body as `T`, naming the offending field when there is one. Every request body
/// of the API is a JSON object: anything else (an array, a string, a number, `null`) is refused
/// before serde sees it, since serde would read a struct from an array of its field values
/// (`["rt_…"]` as a refresh token).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        let message = if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "The request body must be a JSON object."
        } else {
            "The request body is not valid JSON."
        };
        return Err(ApiError::invalid_request(message));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Io
            | serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => "The request body is not valid JSON.".to_owned(),
            serde_json::error::Category::Data => {
                let text = inner.to_string();
                if text.starts_with("unknown field") {
                    "The request has a field this endpoint does not accept.".to_owned()
                } else if text.starts_with("duplicate field") {
                    "The request has the same field twice.".to_owned()
                } else if text.starts_with("missing field") {
                    "The request is missing a required field.".to_owned()
                } else if path == "." {
                    "The request body must be a JSON object.".to_owned()
                } else {
                    format!("The field `{path}` has the wrong type or value.")
                }
            }
        };
        let field = known_field(&path);
        ApiError { field, ..ApiError::invalid_request(message) }
    })?;
    de.end().map_err(|_| ApiError::invalid_request("The request body has data after the JSON value."))?;
    Ok(value)
}

/// Maps a deserialisation path to a `'static` field name the client can focus; unknown paths
/// (which could be anything the client sent) are not echoed.
fn known_field(path: &str) -> Option<&'static str> {
    ["phone", "code", "channel", "locale", "refresh_token"].into_iter().find(|f| *f == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_api::CheckVerificationRequest;

    fn err(body: &str) -> ApiError {
        parse::<CheckVerificationRequest>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn transport_errors_are_invalid_request_without_echo() {
        for body in [
            "",
            "{",
            "[]",
            "null",
            r#"{"phone":"+14155550100","code":"123456"} trailing"#,
            r#"{"phone":"+14155550100","code":"123456","verified":true}"#,
            r#"{"phone":"+14155550100","code":"123456","code":"654321"}"#,
            r#"{"phone":"+14155550100"}"#,
            r#"{"phone":"+14155550100","code":987654}"#,
        ] {
            let e = err(body);
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{body}");
            assert!(!e.message.contains("987654") && !e.message.contains("654321"), "{}", e.message);
        }
        assert_eq!(err(r#"{"phone":"+14155550100","code":987654}"#).field, Some("code"));
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        // Serde reads a struct from an array of its field values; the API takes objects only.
        assert!(parse::<CheckVerificationRequest>(br#"["+14155550100","123456"]"#).is_err());
        for body in ["[]", r#"["rt_x"]"#, r#""x""#, "1", "null", "true", " [ ] ", "\t\"{}\""] {
            let e = parse::<otpgate_api::RefreshTokenRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{body}");
            assert_eq!(e.message, "The request body must be a JSON object.", "{body}");
        }
        assert!(parse::<otpgate_api::RefreshTokenRequest>(b" \n{\"refresh_token\":\"rt_x\"}").is_ok());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let e = parse::<CheckVerificationRequest>(b"{\"phone\":\"\xff\",\"code\":\"123456\"}").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }
}
