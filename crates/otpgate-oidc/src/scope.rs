//! The scopes otpgate knows: `openid` (required for every authorization: otpgate is an OpenID
//! provider only), `phone` (the phone number claims) and `offline_access` (a refresh token,
//! OpenID Connect Core §11). Other values in an authorization request are ignored (Core §3.1.2.1:
//! scope values an implementation does not understand SHOULD be ignored); in a refresh request
//! they are an error (RFC 6749 §6: nothing beyond what was granted).

/// A set of known scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    pub openid: bool,
    pub phone: bool,
    pub offline_access: bool,
}

impl Scope {
    pub const SUPPORTED: [&'static str; 3] = ["openid", "phone", "offline_access"];

    /// What an authorization request asks for, unknown values dropped.
    pub fn from_request(s: &str) -> Scope {
        let mut scope = Scope::default();
        for value in s.split(' ').filter(|v| !v.is_empty()) {
            scope.set(value);
        }
        scope
    }

    /// Only known values; `None` if any is unknown.
    pub fn parse_strict(s: &str) -> Option<Scope> {
        let mut scope = Scope::default();
        for value in s.split(' ').filter(|v| !v.is_empty()) {
            if !scope.set(value) {
                return None;
            }
        }
        Some(scope)
    }

    fn set(&mut self, value: &str) -> bool {
        match value {
            "openid" => self.openid = true,
            "phone" => self.phone = true,
            "offline_access" => self.offline_access = true,
            _ => return false,
        }
        true
    }

    /// Whether every scope of `other` is in `self`.
    pub fn contains(&self, other: &Scope) -> bool {
        (self.openid || !other.openid) && (self.phone || !other.phone) && (self.offline_access || !other.offline_access)
    }

    /// Space separated, in a fixed order (`openid phone offline_access`).
    pub fn to_scope_string(self) -> String {
        let flags = [self.openid, self.phone, self.offline_access];
        Self::SUPPORTED.iter().zip(flags).filter(|(_, on)| *on).map(|(s, _)| *s).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_known_scopes_and_drop_the_rest() {
        let s = Scope::from_request("profile openid  email phone");
        assert_eq!(s, Scope { openid: true, phone: true, offline_access: false });
        assert_eq!(s.to_scope_string(), "openid phone");
        assert_eq!(Scope::from_request("offline_access openid").to_scope_string(), "openid offline_access");
        assert!(!Scope::from_request("OpenID").openid, "scope values are case sensitive");
    }

    #[test]
    fn strict_parsing_refuses_unknown_values_and_subsets_compare() {
        assert_eq!(Scope::parse_strict("openid email"), None);
        let all = Scope::parse_strict("openid phone offline_access").unwrap();
        let some = Scope::parse_strict("openid").unwrap();
        assert!(all.contains(&some) && !some.contains(&all));
        assert!(some.contains(&Scope::default()));
    }
}
