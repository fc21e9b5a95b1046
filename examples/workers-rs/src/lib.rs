//! An application Worker with Tokengate in front of its own routes: every
//! request is checked by the gate first; Tokengate's own routes (logout,
//! logout-all, admin, back-channel logout) and refusals never reach
//! `routes`.

use tokengate::workers_rs::Gate;
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let gate = Gate::for_isolate(&env);
    gate.serve(req, &env, &ctx, routes).await
}

/// The application. It trusts `X-Auth-*`: the gate removed any the client
/// sent and added the verified token's.
async fn routes(req: Request) -> Result<Response> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    match (req.method().as_ref(), req.path().as_str()) {
        ("GET", "/public/hello") => Response::from_json(&serde_json::json!({
            "hello": "anyone",
            "subject": header("x-auth-subject"),
        })),
        ("GET", "/api/me") => Response::from_json(&serde_json::json!({
            "subject": header("x-auth-subject"),
            "issuer": header("x-auth-issuer"),
            "token_id": header("x-auth-token-id"),
            "claims": header("x-auth-claims"),
        })),
        // The application signs the user out everywhere by asking the gate
        // to: `Tokengate-Revoke: user` cuts off every token issued so far.
        ("POST", "/api/sign-out-everywhere") => {
            let mut response = Response::from_json(&serde_json::json!({ "signed_out": true }))?;
            response.headers_mut().set("Tokengate-Revoke", "user")?;
            Ok(response)
        }
        // PASSWORD_CHANGE_PATH: a 2xx here makes the gate record the cut-off.
        ("POST", "/auth/password-change") => Ok(Response::empty()?.with_status(204)),
        _ => Response::error("not found", 404),
    }
}
