//! Time, injected so that every rule about `exp`, `nbf`, `iat` and cut-offs
//! can be tested at an exact instant.

/// Seconds since the Unix epoch, with sub-second precision where the platform
/// has it (RFC 7519 NumericDate may be fractional).
pub type NumericDate = f64;

pub trait Clock {
    fn now(&self) -> NumericDate;
}

/// A clock that always answers the same instant; for tests and for pinning
/// one request to one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub NumericDate);

impl Clock for FixedClock {
    fn now(&self) -> NumericDate {
        self.0
    }
}
