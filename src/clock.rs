//! Time. The core never reads a clock: every rule about `exp`, `nbf`, `iat`
//! and cut-offs takes the instant as a parameter, so tests pin it exactly
//! and the adapter decides when to read it.

/// Seconds since the Unix epoch, with sub-second precision where the platform
/// has it (RFC 7519 NumericDate may be fractional).
pub type NumericDate = f64;
