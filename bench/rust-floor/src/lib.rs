//! Minimal Rust/wasm forwarder: takes the incoming Request, sends it on to the
//! origin (same method, headers, streamed body, path and query), returns the
//! origin's Response. No verification, no KV: the floor of "a request enters
//! wasm and leaves through fetch".

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    pub type Request;

    #[wasm_bindgen(method, getter)]
    fn url(this: &Request) -> String;
    #[wasm_bindgen(method, getter)]
    fn method(this: &Request) -> String;
    #[wasm_bindgen(method, getter)]
    fn headers(this: &Request) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn body(this: &Request) -> JsValue;

    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_init(url: &str, init: &Object) -> Promise;
}

/// Path and query of an absolute URL (everything from the first `/` after the authority).
fn path_and_query(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or("/", |i| &url[after_scheme + i..])
}

#[wasm_bindgen]
pub async fn forward(request: Request, origin: String) -> Result<JsValue, JsValue> {
    let url = request.url();
    let target = format!("{}{}", origin.trim_end_matches('/'), path_and_query(&url));
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &request.method().into())?;
    Reflect::set(&init, &"headers".into(), &request.headers())?;
    Reflect::set(&init, &"body".into(), &request.body())?;
    Reflect::set(&init, &"redirect".into(), &"manual".into())?;
    JsFuture::from(fetch_with_init(&target, &init)).await
}
