//! The `otpgate` binary from the outside, one test binary: its commands (`cli`) and how it
//! takes secrets (`secrets`).

mod cli;
mod secrets;
