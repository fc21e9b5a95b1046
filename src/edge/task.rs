//! A request's future, driven from JavaScript.
//!
//! wasm-bindgen-futures turns every Rust future into a JS promise and wakes
//! it through `queueMicrotask` and boxed closures on every await; profiled in
//! workerd that cost more CPU per request than verifying the token
//! (docs/performance.md, "Where the microseconds go"). Here JS drives instead:
//! `js/host.mjs`'s `drive` polls a [`Task`]; when the task waits on a JS
//! promise, `poll` hands that promise out, JS awaits it natively and hands
//! the result back with `resume`. The core's async code is unchanged: its
//! leaf awaits are [`wait`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::Promise;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

/// Where a waiting task leaves its promise and finds the result.
#[derive(Default)]
struct Slot {
    waiting: Option<Promise>,
    delivered: Option<Result<JsValue, JsValue>>,
}

thread_local! {
    /// The slot of the task being polled. A task may start another (a
    /// background write), which is polled inside it, so polls nest.
    static CURRENT: RefCell<Option<Rc<RefCell<Slot>>>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
pub struct Task {
    future: Pin<Box<dyn Future<Output = JsValue>>>,
    slot: Rc<RefCell<Slot>>,
    output: Option<JsValue>,
}

impl Task {
    pub fn new(future: impl Future<Output = JsValue> + 'static) -> Task {
        Task {
            future: Box::pin(future),
            slot: Rc::default(),
            output: None,
        }
    }
}

#[wasm_bindgen]
impl Task {
    /// Runs the task until it finishes (returns `undefined`; [`Task::finish`]
    /// then gives the result) or waits (returns the promise to await).
    pub fn poll(&mut self) -> Option<Promise> {
        if self.output.is_some() {
            return None;
        }
        let outer = CURRENT.with(|current| current.replace(Some(Rc::clone(&self.slot))));
        let polled = self
            .future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        CURRENT.with(|current| current.replace(outer));
        match polled {
            Poll::Ready(output) => {
                self.output = Some(output);
                None
            }
            // Every pending leaf is `wait`, which left its promise here.
            Poll::Pending => self.slot.borrow_mut().waiting.take(),
        }
    }

    /// Hands the awaited promise's outcome back and runs on.
    pub fn resume(&mut self, fulfilled: bool, value: JsValue) -> Option<Promise> {
        self.slot.borrow_mut().delivered = Some(if fulfilled { Ok(value) } else { Err(value) });
        self.poll()
    }

    /// The task's result, once `poll` returned `undefined`.
    pub fn finish(self) -> JsValue {
        self.output.unwrap_or(JsValue::UNDEFINED)
    }
}

/// Awaits a JS promise inside a [`Task`].
pub async fn wait(promise: Promise) -> Result<JsValue, JsValue> {
    Wait(Some(promise)).await
}

struct Wait(Option<Promise>);

impl Future for Wait {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = CURRENT.with(|current| current.borrow().clone()) else {
            return Poll::Ready(Err(JsValue::from_str("awaited outside a Task")));
        };
        let mut slot = slot.borrow_mut();
        if let Some(promise) = self.0.take() {
            slot.waiting = Some(promise);
            return Poll::Pending;
        }
        match slot.delivered.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}
