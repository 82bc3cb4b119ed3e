//! OpenID Connect flows end to end below HTTP: the real session machinery over the real SQLite
//! store, the in-memory OIDC store, and a manual clock. Tokens are checked the way a relying
//! party checks them: decoded with jsonwebtoken against the RSA key of the published JWKS.

mod flows;
mod harness;
mod logout;
mod revocation;
