//! Tokengate: JWT verification and revocation at the edge.
//!
//! Everything outside [`edge`] is the pure core: it knows nothing of the
//! `worker` crate, takes the current instant as a parameter and its
//! revocation data from an injected [`revocation::RevocationStore`], and runs
//! under plain `cargo test`. The `edge` module is the thin wasm adapter that
//! turns a Worker request into core input and the core's answer into a
//! response. `workers_rs` (cargo feature `workers-rs`) is the other
//! adapter, for use inside a workers-rs Worker; it decides nothing either.

pub mod admin;
pub mod backchannel;
pub mod base64url;
pub mod clock;
pub mod config;
pub mod error;
pub mod form;
pub mod gateway;
pub mod headers;
pub mod jitter;
pub mod keyring;
pub mod keys;
pub mod origin_revoke;
pub mod refresh;
pub mod request;
pub mod revocation;
pub mod routes;
pub mod token;
pub mod verify;

#[cfg(all(target_arch = "wasm32", not(feature = "workers-rs")))]
mod edge;
#[cfg(target_arch = "wasm32")]
mod js_host;
#[cfg(target_arch = "wasm32")]
mod js_value;
#[cfg(all(target_arch = "wasm32", feature = "workers-rs"))]
pub mod workers_rs;
