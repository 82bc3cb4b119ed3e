//! Sessions end to end over the real SQLite store, with time moved by a manual clock. Access
//! tokens are checked against the published JWKS with an independent implementation
//! (ed25519-dalek and a hand-written JWS parser), not only with our own verifier.
//!
//! One binary, a module per topic; `harness` builds the service and reads tokens independently.

mod harness;

mod access_tokens;
mod bound_tokens;
mod keys;
mod privacy;
mod refresh_tokens;
