//! verify::verify_token with HMAC configurations and a verifier without
//! network or public-key crypto. Two kinds of input: raw text as the token,
//! and header and claims that the harness signs correctly with the secret,
//! so the fuzzer reaches the claim rules behind the signature check.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tokengate::config::Config;
use tokengate_fuzz::{assert_claim_rules, assert_client_error, configs, sign_raw, verify_at, NOW};

const ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "hs256", "none", "RS256", "ES256", "EdDSA", "",
];

#[derive(Arbitrary, Debug)]
enum Time {
    Absent,
    /// Seconds from now.
    Offset(i32),
    Fraction(i32, u16),
    Float(f64),
    Text(String),
}

impl Time {
    fn json(&self) -> Option<Value> {
        match self {
            Time::Absent => None,
            Time::Offset(d) => Some(json!(NOW as i64 + i64::from(*d))),
            Time::Fraction(d, f) => Some(json!(NOW + f64::from(*d) + f64::from(*f) / 65536.0)),
            Time::Float(f) => {
                Some(serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number))
            }
            Time::Text(s) => Some(json!(s)),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Aud {
    Absent,
    One(String),
    Many(Vec<String>),
    Api,
    Number(i64),
}

#[derive(Arbitrary, Debug)]
enum Claims {
    Structured {
        exp: Time,
        nbf: Time,
        iat: Time,
        iss: Option<String>,
        known_iss: bool,
        sub: Option<String>,
        jti: Option<String>,
        aud: Aud,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    Structured {
        alg: u8,
        kid: Option<String>,
        typ: Option<String>,
        crit: Option<String>,
        b64: Option<bool>,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
#[allow(clippy::large_enum_variant)] // built once per run, never stored
enum Input {
    Raw {
        config: u8,
        now: i32,
        token: String,
    },
    Signed {
        config: u8,
        now: i32,
        header: Header,
        claims: Claims,
        tamper: Option<(u16, u8)>,
    },
}

fn header_bytes(h: &Header) -> (String, Vec<u8>) {
    match h {
        Header::Structured {
            alg,
            kid,
            typ,
            crit,
            b64,
        } => {
            let alg = ALGS[usize::from(*alg) % ALGS.len()];
            let mut v = json!({ "alg": alg });
            let o = v.as_object_mut().unwrap();
            if let Some(kid) = kid {
                o.insert("kid".into(), json!(kid));
            }
            if let Some(typ) = typ {
                o.insert("typ".into(), json!(typ));
            }
            if let Some(crit) = crit {
                o.insert("crit".into(), json!([crit]));
            }
            if let Some(b64) = b64 {
                o.insert("b64".into(), json!(b64));
            }
            (alg.to_owned(), v.to_string().into_bytes())
        }
        Header::Raw(text) => {
            let alg = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| v.get("alg").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            (alg, text.clone().into_bytes())
        }
    }
}

fn claims_bytes(c: &Claims) -> Vec<u8> {
    match c {
        Claims::Structured {
            exp,
            nbf,
            iat,
            iss,
            known_iss,
            sub,
            jti,
            aud,
        } => {
            let mut o = serde_json::Map::new();
            for (name, t) in [("exp", exp), ("nbf", nbf), ("iat", iat)] {
                if let Some(v) = t.json() {
                    o.insert(name.into(), v);
                }
            }
            let iss = if *known_iss {
                Some("https://issuer.example".to_owned())
            } else {
                iss.clone()
            };
            for (name, s) in [("iss", iss), ("sub", sub.clone()), ("jti", jti.clone())] {
                if let Some(s) = s {
                    o.insert(name.into(), json!(s));
                }
            }
            match aud {
                Aud::Absent => {}
                Aud::One(a) => {
                    o.insert("aud".into(), json!(a));
                }
                Aud::Many(a) => {
                    o.insert("aud".into(), json!(a));
                }
                Aud::Api => {
                    o.insert("aud".into(), json!(["x", "api"]));
                }
                Aud::Number(n) => {
                    o.insert("aud".into(), json!(n));
                }
            }
            Value::Object(o).to_string().into_bytes()
        }
        Claims::Raw(text) => text.clone().into_bytes(),
    }
}

fn check(token: &str, config: &Config, now: f64) -> bool {
    match verify_at(token, config, now) {
        Ok(v) => {
            assert_claim_rules(&v, config, now);
            if TRACE.with(|t| *t) {
                eprintln!("accepted: {token}");
            }
            true
        }
        Err(e) => {
            assert_client_error(e, token);
            false
        }
    }
}

thread_local! {
    /// TOKENGATE_FUZZ_TRACE=1 prints every accepted token (to check, when
    /// replaying a corpus, that the fuzzer gets past the signature check).
    static TRACE: bool = std::env::var_os("TOKENGATE_FUZZ_TRACE").is_some();
    // Config holds Rc keys: per thread, built once.
    static CONFIGS: Vec<Config> = configs();
}

fuzz_target!(|input: Input| CONFIGS.with(|configs| run(configs, input)));

fn run(configs: &[Config], input: Input) {
    match input {
        Input::Raw { config, now, token } => {
            let config = &configs[usize::from(config) % configs.len()];
            check(&token, config, NOW + f64::from(now));
        }
        Input::Signed {
            config,
            now,
            header,
            claims,
            tamper,
        } => {
            let config = &configs[usize::from(config) % configs.len()];
            let now = NOW + f64::from(now % 100_000);
            let (alg, header_json) = header_bytes(&header);
            let mut token = sign_raw(&alg, &header_json, &claims_bytes(&claims));
            let accepted = check(&token, config, now);
            if accepted {
                // Only the HMAC algorithms the configuration allows get in.
                assert!(["HS256", "HS384", "HS512"].contains(&alg.as_str()), "{alg}");
                if let Header::Structured { crit, b64, .. } = &header {
                    assert!(crit.is_none() && b64.is_none(), "crit or b64 accepted");
                }
            }
            if let Some((at, bit)) = tamper {
                // Flip one bit of one byte: never accepted after that.
                let mut bytes = token.into_bytes();
                let i = usize::from(at) % bytes.len();
                bytes[i] ^= 1 << (bit % 7);
                token = String::from_utf8(bytes).expect("ASCII stays ASCII");
                if accepted {
                    let result = verify_at(&token, config, now);
                    // A flip can land on a base64url character's unused low
                    // bits only if the decoder is lenient; base64ct is not.
                    assert!(result.is_err(), "tampered token still verifies: {token}");
                } else {
                    check(&token, config, now);
                }
            }
        }
    }
}
