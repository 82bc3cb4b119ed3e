//! Encodings shared by the backends that store an idempotent answer as text: the replayed
//! headers as `name: value` lines.

use otpgate_core::StoreError;

/// `name: value\n` per header; refuses names and values that would not read back the same.
pub(crate) fn encode_headers(headers: &[(String, String)]) -> Result<String, StoreError> {
    let mut out = String::new();
    for (name, value) in headers {
        let clean =
            |s: &str, extra: &[char]| s.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && !extra.contains(&c));
        if name.is_empty() || !clean(name, &[':', ' ']) || !clean(value, &[]) {
            return Err(StoreError::Internal("an idempotent response header cannot be stored".into()));
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

pub(crate) fn decode_headers(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    text.lines()
        .map(|line| {
            line.split_once(": ")
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .ok_or_else(|| StoreError::Internal("corrupt idempotency entry: headers".into()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_refuse_line_breaks() {
        let headers = vec![("content-type".to_owned(), "application/json".to_owned()), ("x-a".into(), "".into())];
        assert_eq!(decode_headers(&encode_headers(&headers).unwrap()).unwrap(), headers);
        assert!(encode_headers(&[("a".into(), "b\nc".into())]).is_err());
        assert!(encode_headers(&[("a:b".into(), "c".into())]).is_err());
    }
}
