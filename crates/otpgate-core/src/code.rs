//! One-time codes: generated from the OS CSPRNG, held in memory only as long as it takes to
//! hand them to a provider, and stored only as a keyed HMAC bound to the phone number.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::PhoneNumber;

/// Fills `buf` from the operating system's CSPRNG. Failing to read it is unrecoverable: a
/// service that cannot get randomness must not issue codes or tokens.
pub fn os_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random number generator is unavailable");
}

/// A plaintext code. `Debug` and `Display` are redacted so it cannot end up in a log by accident;
/// read it with `expose()` where it is really needed (the provider's message).
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// `len` uniformly random ASCII digits (leading zeros included).
    pub fn generate(len: usize) -> Code {
        let mut out = String::with_capacity(len);
        let mut buf = [0u8; 32];
        while out.len() < len {
            os_random(&mut buf);
            // Rejection sampling: bytes >= 250 would make low digits more likely.
            for b in buf.iter().filter(|b| **b < 250) {
                if out.len() == len {
                    break;
                }
                out.push(char::from(b'0' + b % 10));
            }
        }
        Code(out)
    }

    /// Accepts exactly `len` ASCII digits and nothing else (no full-width or Arabic-Indic digits,
    /// no sign, no spaces).
    pub fn parse(input: &str, len: usize) -> Option<Code> {
        (input.len() == len && input.bytes().all(|b| b.is_ascii_digit())).then(|| Code(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// HMAC-SHA256 of a code, bound to its phone number. Equality is constant time.
#[derive(Clone, Copy)]
pub struct CodeDigest(pub [u8; 32]);

impl CodeDigest {
    pub fn from_slice(bytes: &[u8]) -> Option<CodeDigest> {
        <[u8; 32]>::try_from(bytes).ok().map(CodeDigest)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn ct_eq(&self, other: &CodeDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for CodeDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeDigest(..)")
    }
}

/// Holds the server's HMAC key. A dump of the store without this key reveals nothing usable:
/// with it, a 6-digit code falls to a million HMACs, so the key never lives beside the data.
#[derive(Clone)]
pub struct CodeHasher {
    mac: Hmac<Sha256>,
}

/// Shortest key we accept: the full output size of SHA-256.
pub const MIN_KEY_LEN: usize = 32;

impl CodeHasher {
    pub fn new(key: &[u8]) -> Result<CodeHasher, KeyTooShort> {
        if key.len() < MIN_KEY_LEN {
            return Err(KeyTooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| KeyTooShort)?;
        Ok(CodeHasher { mac })
    }

    /// Digest of `code` for `phone`; the same code for another phone gives another digest.
    pub fn digest(&self, phone: &PhoneNumber, code: &Code) -> CodeDigest {
        self.digest_parts(&[b"otpgate-code-v1", phone.e164().as_bytes(), code.0.as_bytes()])
    }

    /// A keyed digest of arbitrary, length-delimited parts (for other secrets, e.g. tokens).
    pub fn digest_parts(&self, parts: &[&[u8]]) -> CodeDigest {
        let mut mac = self.mac.clone();
        for part in parts {
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        CodeDigest(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHasher(<key redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the HMAC key must be at least {MIN_KEY_LEN} bytes")]
pub struct KeyTooShort;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_digits_of_the_asked_length() {
        for len in 4..=10 {
            let c = Code::generate(len);
            assert_eq!(c.expose().len(), len);
            assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn generated_codes_are_spread_over_all_digits() {
        // 2,000 codes of 6 digits = 12,000 digits; each digit expected 1,200 times.
        let mut counts = [0u32; 10];
        let mut leading_zero = 0;
        for _ in 0..2000 {
            let c = Code::generate(6);
            if c.expose().starts_with('0') {
                leading_zero += 1;
            }
            for b in c.expose().bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        for (digit, n) in counts.iter().enumerate() {
            assert!((900..1500).contains(n), "digit {digit} seen {n} times");
        }
        assert!(leading_zero > 100, "leading zeros must happen ({leading_zero}/2000)");
    }

    #[test]
    fn parse_accepts_only_ascii_digits_of_exact_length() {
        assert!(Code::parse("123456", 6).is_some());
        assert!(Code::parse("012345", 6).is_some());
        for bad in ["12345", "1234567", "+12345", " 12345", "12345 ", "１２３４５６", "١٢٣٤٥٦", "12a456", ""]
        {
            assert!(Code::parse(bad, 6).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn digest_is_keyed_and_bound_to_the_phone() {
        let a = PhoneNumber::parse("+14155550100", None).unwrap();
        let b = PhoneNumber::parse("+14155550101", None).unwrap();
        let code = Code::parse("123456", 6).unwrap();
        let h1 = CodeHasher::new(&[1u8; 32]).unwrap();
        let h2 = CodeHasher::new(&[2u8; 32]).unwrap();
        assert!(h1.digest(&a, &code).ct_eq(&h1.digest(&a, &code)));
        assert!(!h1.digest(&a, &code).ct_eq(&h1.digest(&b, &code)));
        assert!(!h1.digest(&a, &code).ct_eq(&h2.digest(&a, &code)));
        assert!(CodeHasher::new(&[0u8; 31]).is_err());
    }

    #[test]
    fn code_debug_is_redacted() {
        let c = Code::parse("123456", 6).unwrap();
        assert!(!format!("{c:?}").contains("123456"));
    }
}
