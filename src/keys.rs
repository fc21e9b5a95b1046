//! Algorithms and keys, and the rule that binds one to the other.
//!
//! The token's `alg` header only picks among the algorithms the operator
//! allowed, and a key is used only with the algorithms its type, curve,
//! `alg` and `use` allow (RFC 8725 sections 2.1, 3.1). So an HS256 token
//! "signed" with an RSA public key finds no key: RSA keys never do HMAC.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha384, Sha512};

use crate::error::GateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// What kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Hmac,
    Rsa,
    /// NIST curve, by its JOSE name (`P-256`, `P-384`).
    Ec(&'static str),
    Ed25519,
}

impl Algorithm {
    pub const ALL: &'static [Algorithm] = &[
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// Exact, case-sensitive match on the JOSE name (RFC 7518 names are
    /// case-sensitive); `none` and unknown names give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        use Algorithm::*;
        match self {
            Hs256 => "HS256",
            Hs384 => "HS384",
            Hs512 => "HS512",
            Rs256 => "RS256",
            Rs384 => "RS384",
            Rs512 => "RS512",
            Ps256 => "PS256",
            Ps384 => "PS384",
            Ps512 => "PS512",
            Es256 => "ES256",
            Es384 => "ES384",
            EdDsa => "EdDSA",
        }
    }

    pub fn key_type(self) -> KeyType {
        use Algorithm::*;
        match self {
            Hs256 | Hs384 | Hs512 => KeyType::Hmac,
            Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512 => KeyType::Rsa,
            Es256 => KeyType::Ec("P-256"),
            Es384 => KeyType::Ec("P-384"),
            EdDsa => KeyType::Ed25519,
        }
    }

    /// SHA-2 output size in bits, where the algorithm names one.
    pub fn hash_bits(self) -> u16 {
        use Algorithm::*;
        match self {
            Hs256 | Rs256 | Ps256 | Es256 => 256,
            Hs384 | Rs384 | Ps384 | Es384 => 384,
            Hs512 | Rs512 | Ps512 | EdDsa => 512,
        }
    }
}

/// RFC 7518 3.3 and RFC 8725: RSA keys below 2048 bits are refused.
pub const MIN_RSA_BITS: usize = 2048;

/// A key that can check signatures for some algorithms.
#[derive(Debug)]
pub struct VerifyKey {
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: then only that one.
    pub alg: Option<Algorithm>,
    pub material: KeyMaterial,
}

pub enum KeyMaterial {
    Hmac(Box<HmacKeys>),
    /// A public key as a minimal JWK (only the public members, as JSON
    /// text), ready for WebCrypto's `importKey("jwk", ...)`.
    Public {
        key_type: KeyType,
        jwk: String,
        /// This key's number, unique among the keys parsed in this process
        /// ([`next_key_serial`]): a verifier caches its imported form by
        /// it, so the text crosses into JavaScript only once.
        serial: u64,
    },
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Hmac(_) => f.write_str("Hmac(<redacted>)"),
            KeyMaterial::Public { key_type, jwk, .. } => write!(f, "Public({key_type:?}, {jwk})"),
        }
    }
}

impl VerifyKey {
    pub fn key_type(&self) -> KeyType {
        match &self.material {
            KeyMaterial::Hmac(_) => KeyType::Hmac,
            KeyMaterial::Public { key_type, .. } => *key_type,
        }
    }

    /// The binding rule: may this key check a token signed with `alg`?
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.key_type() == alg.key_type() && self.alg.is_none_or(|own| own == alg)
    }
}

/// Keys that can verify a token with this `alg` and `kid`. A token with a
/// `kid` only matches keys with that `kid`; HMAC keys from `JWT_SECRET` have
/// none and match any. Without a `kid`, every key that fits the algorithm is
/// a candidate.
pub fn candidates<'k>(
    keys: &'k [Rc<VerifyKey>],
    alg: Algorithm,
    kid: Option<&str>,
) -> impl Iterator<Item = &'k Rc<VerifyKey>> + 'k {
    let kid = kid.map(str::to_owned);
    keys.iter().filter(move |key| {
        key.accepts(alg)
            && match (&kid, &key.kid) {
                (Some(wanted), Some(own)) => wanted == own,
                (Some(_), None) => matches!(key.material, KeyMaterial::Hmac(_)),
                (None, _) => true,
            }
    })
}

#[derive(Deserialize)]
struct JwkSet<'a> {
    #[serde(borrow)]
    keys: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct JwkFields {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
    d: Option<String>,
}

/// RFC 7518 3.2: an HMAC key must be at least as long as the hash; we ask
/// for the HS256 minimum for every HS algorithm.
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// Where a key set comes from decides whether it may hold HMAC secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySetSource {
    /// `JWT_JWKS` / an issuer's `jwks`: configuration, may hold `oct` keys.
    Configured,
    /// A fetched JWKS is public by nature: an `oct` key there would let
    /// anyone who can read it sign HS tokens, so it is skipped.
    Remote,
}

/// Parses a JWKS. Keys we cannot or must not use (encryption keys, unknown
/// types or curves, short RSA or HMAC keys, private keys, remote secrets,
/// malformed members) are skipped and named in the second list, so one odd
/// key does not take the rest down; a set that is not JSON, or has no
/// usable key, is an error.
pub fn parse_jwks(
    json: &str,
    source: KeySetSource,
) -> Result<(Vec<Rc<VerifyKey>>, Vec<String>), String> {
    let set: JwkSet =
        serde_json::from_str(json).map_err(|_| "not a JWK Set (RFC 7517 5)".to_owned())?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in set.keys.into_iter().enumerate() {
        match parse_jwk(value.get(), source) {
            Ok(key) => keys.push(Rc::new(key)),
            Err(why) => skipped.push(format!("key {index}: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("no usable signature key ({})", skipped.join("; ")));
    }
    Ok((keys, skipped))
}

fn parse_jwk(json: &str, source: KeySetSource) -> Result<VerifyKey, String> {
    let f: JwkFields = serde_json::from_str(json).map_err(|_| "malformed JWK".to_owned())?;
    if f.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (use)".into());
    }
    if f.key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("key_ops does not allow verify".into());
    }
    let alg = match &f.alg {
        None => None,
        Some(name) => {
            Some(Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg {name:?}"))?)
        }
    };
    let b64 = |member: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let text = member.as_deref().ok_or_else(|| format!("missing {name}"))?;
        Base64UrlUnpadded::decode_vec(text).map_err(|_| format!("{name} is not base64url"))
    };
    // Members were just decoded as base64url, so they need no JSON escaping.
    let member = |m: &Option<String>| m.clone().unwrap_or_default();
    let public = |key_type: KeyType, jwk: String| KeyMaterial::Public {
        key_type,
        jwk,
        serial: next_key_serial(),
    };
    let material = match f.kty.as_str() {
        "oct" if source == KeySetSource::Remote => {
            return Err("HMAC key in a fetched (public) key set".into())
        }
        "oct" => {
            let k = b64(&f.k, "k")?;
            if k.len() < MIN_HMAC_KEY_BYTES {
                return Err(format!(
                    "HMAC key of {} bytes, {MIN_HMAC_KEY_BYTES} required",
                    k.len()
                ));
            }
            KeyMaterial::Hmac(Box::new(HmacKeys::new(&k)))
        }
        _ if f.d.is_some() => return Err("private key material in a verification key set".into()),
        "RSA" => {
            let n = b64(&f.n, "n")?;
            b64(&f.e, "e")?;
            let bits = (n.len() - n.iter().take_while(|b| **b == 0).count()) * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!("RSA key of {bits} bits, {MIN_RSA_BITS} required"));
            }
            public(
                KeyType::Rsa,
                format!(
                    r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#,
                    member(&f.n),
                    member(&f.e)
                ),
            )
        }
        "EC" => {
            let key_type = match f.crv.as_deref() {
                Some("P-256") => KeyType::Ec("P-256"),
                Some("P-384") => KeyType::Ec("P-384"),
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            b64(&f.x, "x")?;
            b64(&f.y, "y")?;
            public(
                key_type,
                format!(
                    r#"{{"kty":"EC","crv":"{}","x":"{}","y":"{}"}}"#,
                    member(&f.crv),
                    member(&f.x),
                    member(&f.y)
                ),
            )
        }
        "OKP" => {
            if f.crv.as_deref() != Some("Ed25519") {
                return Err(format!("unsupported OKP curve {:?}", f.crv));
            }
            if b64(&f.x, "x")?.len() != 32 {
                return Err("Ed25519 x must be 32 bytes".into());
            }
            public(
                KeyType::Ed25519,
                format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, member(&f.x)),
            )
        }
        other => return Err(format!("unsupported kty {other:?}")),
    };
    let key = VerifyKey {
        kid: f.kid,
        alg,
        material,
    };
    if let Some(alg) = key.alg {
        if !key.accepts(alg) {
            return Err(format!("alg {} does not fit the key type", alg.name()));
        }
    }
    Ok(key)
}

/// A number never given out before in this process. 64 bits: it cannot
/// wrap, so a cached import can never be taken for another key's.
fn next_key_serial() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Checks an asymmetric signature. Asynchronous so that an implementation
/// can call WebCrypto (`crypto.subtle.verify` returns a Promise) without the
/// core knowing anything about JavaScript. HMAC never comes here.
#[allow(async_fn_in_trait)] // Worker futures are !Send; no Send bound wanted.
pub trait SignatureVerifier {
    /// `Ok(true)` when `signature` is valid for `signing_input` under `key`.
    /// `Err` only when the check itself could not run.
    async fn verify(
        &self,
        alg: Algorithm,
        key: &VerifyKey,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, GateError>;
}

/// A verifier for native tests, which have no WebCrypto: every public-key
/// signature is refused.
#[cfg(test)]
pub struct NoPublicKeys;

#[cfg(test)]
impl SignatureVerifier for NoPublicKeys {
    async fn verify(
        &self,
        _: Algorithm,
        _: &VerifyKey,
        _: &[u8],
        _: &[u8],
    ) -> Result<bool, GateError> {
        Ok(false)
    }
}

/// An HMAC secret, keyed once for each HMAC algorithm the first time a
/// token of that algorithm comes: the keyed state (the hashed inner and
/// outer pads, two compression rounds) is then cloned per token instead of
/// computed again, as jwt-compact's `Hs256Key` does on every call. Keyed
/// lazily so that an HS256-only deployment never runs (nor, in wasm,
/// compiles) SHA-512.
#[derive(Clone)]
pub struct HmacKeys {
    secret: Box<[u8]>,
    hs256: OnceCell<Hmac<Sha256>>,
    hs384: OnceCell<Hmac<Sha384>>,
    hs512: OnceCell<Hmac<Sha512>>,
}

impl HmacKeys {
    pub fn new(secret: &[u8]) -> HmacKeys {
        HmacKeys {
            secret: secret.into(),
            hs256: OnceCell::new(),
            hs384: OnceCell::new(),
            hs512: OnceCell::new(),
        }
    }

    /// Constant-time HMAC check (`verify_slice` compares with `subtle`, and
    /// refuses a tag of the wrong length). HMAC stays in Rust: synchronous,
    /// and measured cheap (docs/performance.md).
    pub fn verify(&self, alg: Algorithm, signing_input: &[u8], signature: &[u8]) -> bool {
        match alg {
            Algorithm::Hs256 => self.check(&self.hs256, signing_input, signature),
            Algorithm::Hs384 => self.check(&self.hs384, signing_input, signature),
            Algorithm::Hs512 => self.check(&self.hs512, signing_input, signature),
            _ => false,
        }
    }

    /// The HS256 tag of `message` (the JWKS cache's seal, src/edge/jwks.rs).
    pub fn sign_hs256(&self, message: &[u8]) -> Vec<u8> {
        let mut mac = self.keyed(&self.hs256).clone();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    /// The algorithm's keyed state, keyed the first time it is asked for.
    fn keyed<'k, M: KeyInit>(&self, cell: &'k OnceCell<M>) -> &'k M {
        // HMAC takes a key of any length (RFC 2104 2); the minimum we ask
        // for is checked where keys are configured.
        cell.get_or_init(|| {
            M::new_from_slice(&self.secret).expect("HMAC accepts keys of every length")
        })
    }

    fn check<M: Mac + KeyInit + Clone>(
        &self,
        cell: &OnceCell<M>,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let mut mac = self.keyed(cell).clone();
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N_2048: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

    fn key(json: serde_json::Value) -> Result<VerifyKey, String> {
        parse_jwk(&json.to_string(), KeySetSource::Configured)
    }

    const K32: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

    #[test]
    fn algorithm_names_round_trip_exactly() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(*alg));
        }
        for bad in ["none", "None", "hs256", "ES512", "RS1", ""] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_bind_to_their_algorithms() {
        let rsa = key(serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB"})).unwrap();
        assert!(rsa.accepts(Algorithm::Rs256) && rsa.accepts(Algorithm::Ps512));
        assert!(!rsa.accepts(Algorithm::Hs256), "an RSA key never does HMAC");
        assert!(!rsa.accepts(Algorithm::Es256));

        let pinned =
            key(serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB", "alg": "PS256"}))
                .unwrap();
        assert!(pinned.accepts(Algorithm::Ps256) && !pinned.accepts(Algorithm::Rs256));

        let p256 =
            key(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})).unwrap();
        assert!(p256.accepts(Algorithm::Es256) && !p256.accepts(Algorithm::Es384));

        let oct = key(serde_json::json!({"kty": "oct", "k": K32})).unwrap();
        assert!(oct.accepts(Algorithm::Hs384) && !oct.accepts(Algorithm::Rs256));
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let cases = [
            (
                serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
                "bits",
            ),
            (
                serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB", "use": "enc"}),
                "use",
            ),
            (
                serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB", "alg": "ES256"}),
                "does not fit",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
                "curve",
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "X25519", "x": "AA"}),
                "curve",
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}),
                "private",
            ),
            (serde_json::json!({"kty": "RSA", "e": "AQAB"}), "missing n"),
            (
                serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB", "key_ops": ["sign"]}),
                "key_ops",
            ),
        ];
        for (jwk, why) in cases {
            let err = key(jwk.clone()).unwrap_err();
            assert!(err.contains(why), "{jwk}: {err}");
        }
        let set = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"{RSA_N_2048}","e":"AQAB","kid":"good"}},{{"kty":"RSA","n":"AQAB","e":"AQAB"}}]}}"#
        );
        let (keys, skipped) = parse_jwks(&set, KeySetSource::Configured).unwrap();
        assert_eq!((keys.len(), skipped.len()), (1, 1));
        assert!(parse_jwks(r#"{"keys":[]}"#, KeySetSource::Configured).is_err());
        assert!(parse_jwks("[]", KeySetSource::Configured).is_err());
        let secret = format!(r#"{{"keys":[{{"kty":"oct","k":"{K32}"}}]}}"#);
        assert!(parse_jwks(&secret, KeySetSource::Configured).is_ok());
        let err = parse_jwks(&secret, KeySetSource::Remote).unwrap_err();
        assert!(err.contains("fetched"), "{err}");
    }

    #[test]
    fn kid_selects_keys_and_secrets_match_any_kid() {
        let rsa = |kid: &str| {
            Rc::new(
                key(serde_json::json!({"kty": "RSA", "n": RSA_N_2048, "e": "AQAB", "kid": kid}))
                    .unwrap(),
            )
        };
        let secret = Rc::new(VerifyKey {
            kid: None,
            alg: None,
            material: KeyMaterial::Hmac(Box::new(HmacKeys::new(b"s"))),
        });
        let keys = vec![rsa("a"), rsa("b"), secret];
        let kids = |alg, kid| {
            candidates(&keys, alg, kid)
                .map(|k| k.kid.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(Algorithm::Rs256, Some("b")), [Some("b".to_owned())]);
        assert_eq!(
            kids(Algorithm::Rs256, Some("c")),
            Vec::<Option<String>>::new()
        );
        assert_eq!(kids(Algorithm::Rs256, None).len(), 2);
        assert_eq!(kids(Algorithm::Hs256, Some("anything")), [None]);
    }

    #[test]
    fn hmac_checks_agree_with_jwt_compact_every_time_and_refuse_any_other_tag() {
        use jwt_compact::alg::{Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
        use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
        let secret = b"a-secret-of-at-least-thirty-two-bytes";
        let keys = HmacKeys::new(secret);
        let message = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
        let tags = [
            (
                Algorithm::Hs256,
                Hs256
                    .sign(&Hs256Key::new(secret), message)
                    .as_bytes()
                    .to_vec(),
            ),
            (
                Algorithm::Hs384,
                Hs384
                    .sign(&Hs384Key::new(secret), message)
                    .as_bytes()
                    .to_vec(),
            ),
            (
                Algorithm::Hs512,
                Hs512
                    .sign(&Hs512Key::new(secret), message)
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        for (alg, tag) in &tags {
            // Twice: the keyed state is cloned per check, never used up.
            assert!(keys.verify(*alg, message, tag), "{alg:?}");
            assert!(keys.verify(*alg, message, tag), "{alg:?} again");
            assert!(!keys.verify(*alg, b"another message", tag), "{alg:?}");
            assert!(!keys.verify(*alg, message, &tag[1..]), "{alg:?}: short tag");
            let mut flipped = tag.clone();
            flipped[0] ^= 1;
            assert!(
                !keys.verify(*alg, message, &flipped),
                "{alg:?}: flipped bit"
            );
            assert!(
                !HmacKeys::new(b"another-secret-of-thirty-two-bytes!").verify(*alg, message, tag)
            );
        }
        assert!(
            !keys.verify(Algorithm::Hs384, message, &tags[0].1),
            "an HS256 tag is no HS384 tag"
        );
        assert!(
            !keys.verify(Algorithm::Rs256, message, &tags[0].1),
            "HMAC keys do no RSA"
        );
        assert_eq!(keys.sign_hs256(message), tags[0].1);
    }
}
