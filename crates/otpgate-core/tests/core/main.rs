//! Core's property tests, one binary: phone parsing and region codes, codes, hashing and the
//! GCRA limiter.

mod prop_codes_limits;
mod prop_phone;
