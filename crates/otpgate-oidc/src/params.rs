//! Request parameters (a query string or a form body) as the endpoints read them: each name at
//! most once (RFC 6749 §3.1, §3.2), and a parameter sent without a value counts as absent.

use std::borrow::Cow;

/// Longest parameter value we take (an ID token hint is the longest we expect, ~1.5 KiB).
const MAX_VALUE_LEN: usize = 8 * 1024;

/// Parsed parameters, in order; duplicates are kept so that asking for one is an error.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// A parameter the request may carry only once came more than once, or was too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter `{0}` is repeated")]
    Repeated(&'static str),
    #[error("parameter `{0}` is too long")]
    TooLong(&'static str),
}

impl Params {
    /// From `application/x-www-form-urlencoded` bytes (a query string without `?`, or a body).
    pub fn parse(form: &[u8]) -> Self {
        Self::from_pairs(url::form_urlencoded::parse(form))
    }

    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Params { pairs: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name`: `None` when absent or empty, an error when repeated or too long.
    pub fn get(&self, name: &'static str) -> Result<Option<&str>, ParamError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::Repeated(name));
        }
        match first {
            Some(v) if v.len() > MAX_VALUE_LEN => Err(ParamError::TooLong(name)),
            Some("") | None => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    }

    /// The first repeated parameter among `names`, if any.
    pub fn first_repeated(&self, names: &[&'static str]) -> Option<&'static str> {
        names.iter().copied().find(|n| self.pairs.iter().filter(|(k, _)| k == n).count() > 1)
    }
}

impl<'a> FromIterator<(Cow<'a, str>, Cow<'a, str>)> for Params {
    fn from_iter<I: IntoIterator<Item = (Cow<'a, str>, Cow<'a, str>)>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_decode_and_empty_counts_as_absent() {
        let p = Params::parse(b"a=1&b=&c=x%20y+z&d=%E2%9C%93");
        assert_eq!(p.get("a"), Ok(Some("1")));
        assert_eq!(p.get("b"), Ok(None));
        assert_eq!(p.get("c"), Ok(Some("x y z")));
        assert_eq!(p.get("d"), Ok(Some("✓")));
        assert_eq!(p.get("missing"), Ok(None));
    }

    #[test]
    fn repeated_and_oversized_parameters_are_errors() {
        let p = Params::parse(b"state=a&state=b&x=1");
        assert_eq!(p.get("state"), Err(ParamError::Repeated("state")));
        assert_eq!(p.first_repeated(&["x", "state"]), Some("state"));
        assert_eq!(p.first_repeated(&["x"]), None);
        let long = format!("nonce={}", "n".repeat(MAX_VALUE_LEN + 1));
        assert_eq!(Params::parse(long.as_bytes()).get("nonce"), Err(ParamError::TooLong("nonce")));
    }
}
