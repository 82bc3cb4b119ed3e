//! RFC 3339 rendering of domain timestamps.

use otpgate_core::Timestamp;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `2026-11-24T10:02:00Z` (second precision, UTC).
pub fn rfc3339(t: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp(t.0.div_euclid(1000))
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(rfc3339(Timestamp(1_795_946_520_999)), "2026-11-29T10:02:00Z");
    }
}
