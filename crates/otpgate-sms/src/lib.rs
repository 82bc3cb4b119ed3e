//! otpgate's SMS providers. Each implements `otpgate_core::SmsProvider`; the server picks them
//! from configuration and never knows which one it talks to.

pub mod demo;
