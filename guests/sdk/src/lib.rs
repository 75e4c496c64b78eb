//! # outpost-guest: write Outpost guests in plain Rust
//!
//! A guest is a WebAssembly component that implements one or more hooks of the
//! `outpost:edge@0.1.0` contract (`wit/outpost.wit`). With this crate a guest is a
//! type implementing a hook trait plus one export macro:
//!
//! ```
//! use outpost_guest::{host, RequestAction, RequestEdit, RequestHead, RequestHook};
//!
//! struct AddHeader;
//!
//! impl RequestHook for AddHeader {
//!     fn on_request(req: &RequestHead) -> RequestAction {
//!         let value = host::config("value").unwrap_or_else(|| "1".into());
//!         if req.header("x-seen").is_some() {
//!             return RequestAction::pass();
//!         }
//!         RequestAction::forward(RequestEdit::default().set_header("x-seen", &value))
//!     }
//! }
//!
//! outpost_guest::export_request!(AddHeader);
//! ```
//!
//! * Enable the cargo feature of each hook you implement: `admit`, `request`,
//!   `response`. Each gives the trait ([`AdmitHook`], [`RequestHook`],
//!   [`ResponseHook`]) and the export macro (`export_admit!`, `export_request!`,
//!   `export_response!`).
//! * The types ([`RequestHead`], [`RequestEdit`], [`Response`] ...) are plain Rust,
//!   independent of wit-bindgen; the export macro converts at the boundary.
//! * [`host`] has the imports (config, load, clocks, log). Off the component
//!   target (`wasm32-wasip2`, `target_os = "wasi"`) they read a thread-local mock
//!   that [`testing`] sets, so a guest's unit tests are plain `cargo test`, and the
//!   guests' logic also builds for the browser (`wasm32-unknown-unknown`).
//! * The export macro generates, in the guest crate, the bindings of exactly the
//!   world it exports, so the component exports only the hooks it implements.
//!   Depend on this crate under its own name (`outpost_guest`): the generated
//!   code refers to it by that path.

/// What the node and the guests agree on: class names, IP networks, the shared
/// store's bounds (the `outpost-common` crate).
pub use outpost_common as common;

pub mod cmcd;
pub mod host;
pub mod testing;
pub mod text;
pub mod types;
pub mod ua;
pub mod url;

#[cfg(target_os = "wasi")]
pub mod wit;

pub use types::{
    Admission, AdmitDecision, CheckContext, ClientInfo, ConfigProblem, Header, HeaderOp,
    LoadSignals, LogLevel, PriorityClass, RequestAction, RequestEdit, RequestHead, Response,
    ResponseEdit, ResponseHead,
};

/// The admit hook: classify a request or reject it. Runs first, once per request.
#[cfg(feature = "admit")]
pub trait AdmitHook {
    /// Classify `req`.
    fn on_admit(req: &RequestHead) -> AdmitDecision;
}

/// The request hook: rewrite the request, pick the origin, or answer at the edge.
#[cfg(feature = "request")]
pub trait RequestHook {
    /// Decide what to do with `req` (already changed by earlier guests).
    fn on_request(req: &RequestHead) -> RequestAction;
}

/// The response hook: rewrite the response head and, when handed over, the body.
#[cfg(feature = "response")]
pub trait ResponseHook {
    /// Change the response. `req` is the request as sent to the origin; `body` is
    /// the full body when the route declares this content type for
    /// transformation, otherwise `None`.
    fn on_response(req: &RequestHead, resp: &ResponseHead, body: Option<&[u8]>) -> ResponseEdit;
}

/// Check a guest's configuration when the node loads it (`config-check`).
///
/// Pass the implementing type to the export macro:
/// `export_request!(MyGuest, check: MyGuest)`. Each problem becomes a config error
/// positioned at the key (and list item) in the operator's TOML; the node does not
/// start with a guest whose check reports problems. Read the configuration with
/// [`host`] as in the hook itself, so the check and the hook agree.
pub trait ConfigCheck {
    /// Every problem found; empty when the configuration is good.
    fn check_config(ctx: &CheckContext) -> Vec<ConfigProblem>;
}

/// Start-up work done once, when the node loads the guest (`outpost:edge/init`),
/// rather than in every request's fresh instance: parse the configuration into a
/// `static` (a `OnceLock`), build lookup tables. The node snapshots the instance
/// after `init`, so each fresh instance starts from that state. Export it with
/// [`export_init!`]; read the configuration with [`host`] as the hooks do.
pub trait Init {
    /// Do the start-up work.
    fn init();
}

/// The check of a guest that has none: every configuration is accepted.
pub struct NoCheck;

impl ConfigCheck for NoCheck {
    fn check_config(_: &CheckContext) -> Vec<ConfigProblem> {
        Vec::new()
    }
}

/// Export `C: ConfigCheck` as this component's `outpost:edge/config-check`: the
/// load-time configuration check. Once per crate, whatever hooks it exports (the
/// `check:` form of a hook's export macro does the same):
///
/// ```ignore
/// outpost_guest::export_admit!(Shed);
/// outpost_guest::export_request!(Rewrite);
/// outpost_guest::export_check!(Both);
/// ```
///
/// Off the component target it only checks the trait bound.
#[macro_export]
macro_rules! export_check {
    ($c:ty) => {
        const _: fn() = $crate::__private::assert_check::<$c>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        type __OutpostCheck = $c;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, unused, clippy::all)]
        mod __outpost_check_export {
            $crate::__outpost_generate!(
                world: "check",
                with: {
                    "outpost:edge/host@0.1.0": ::outpost_guest::__private::wit::host,
                },
                runtime_path: "::outpost_guest::__private::wit_bindgen::rt",
                generate_all,
            );
            struct Check;
            impl exports::outpost::edge::config_check::Guest for Check {
                fn check(
                    context: exports::outpost::edge::config_check::CheckContext,
                ) -> ::std::vec::Vec<exports::outpost::edge::config_check::ConfigProblem> {
                    ::outpost_guest::__private::run_check::<super::__OutpostCheck, _>(
                        context.origins,
                        |p| exports::outpost::edge::config_check::ConfigProblem {
                            key: p.key,
                            item: p.item,
                            message: p.message,
                        },
                    )
                }
            }
            export!(Check);
        }
    };
}

/// Export `T: Init` as this component's `outpost:edge/init`: the start-up work the
/// node runs once at load and snapshots (pre-initialization). Once per crate,
/// whatever hooks it exports:
///
/// ```ignore
/// impl outpost_guest::Init for Rewrite {
///     fn init() {
///         with_config(|_| ()); // parse the configuration into its OnceLock
///     }
/// }
/// outpost_guest::export_init!(Rewrite);
/// ```
///
/// Off the component target it only checks the trait bound.
#[macro_export]
macro_rules! export_init {
    ($t:ty) => {
        const _: fn() = $crate::__private::assert_init::<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        type __OutpostInit = $t;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, unused, clippy::all)]
        mod __outpost_init_export {
            $crate::__outpost_generate!(
                world: "pre-init",
                with: {
                    "outpost:edge/host@0.1.0": ::outpost_guest::__private::wit::host,
                },
                runtime_path: "::outpost_guest::__private::wit_bindgen::rt",
                generate_all,
            );
            struct Start;
            impl exports::outpost::edge::init::Guest for Start {
                fn init() {
                    <super::__OutpostInit as ::outpost_guest::Init>::init();
                }
            }
            export!(Start);
        }
    };
}

// `__outpost_generate!`: `wit_bindgen::generate!` with the WIT package inlined
// (written by build.rs from wit/outpost.wit, a link to the repository's wit/).
include!(concat!(env!("OUT_DIR"), "/wit_macro.rs"));

/// Support for the export macros. Not part of the API.
#[doc(hidden)]
pub mod __private {
    use core::marker::PhantomData;

    pub use wit_bindgen;

    #[cfg(target_os = "wasi")]
    pub use crate::wit;

    /// The type a guest's generated `Guest` trait is implemented for.
    pub struct Glue<T: ?Sized>(PhantomData<T>);

    pub fn assert_check<T: crate::ConfigCheck>() {}

    pub fn assert_init<T: crate::Init>() {}

    /// Run `C`'s check and convert its problems with `f` (the guest's generated type).
    pub fn run_check<C: crate::ConfigCheck, P>(
        origins: Vec<String>,
        f: impl Fn(crate::ConfigProblem) -> P,
    ) -> Vec<P> {
        C::check_config(&crate::CheckContext { origins })
            .into_iter()
            .map(f)
            .collect()
    }

    #[cfg(feature = "admit")]
    pub fn assert_admit<T: crate::AdmitHook>() {}
    #[cfg(feature = "request")]
    pub fn assert_request<T: crate::RequestHook>() {}
    #[cfg(feature = "response")]
    pub fn assert_response<T: crate::ResponseHook>() {}

    #[cfg(all(target_os = "wasi", feature = "admit"))]
    impl<T: crate::AdmitHook> Glue<T> {
        pub fn run_admit(req: wit::types::RequestHead) -> wit::types::AdmitDecision {
            T::on_admit(&req.into()).into()
        }
    }

    #[cfg(all(target_os = "wasi", feature = "request"))]
    impl<T: crate::RequestHook> Glue<T> {
        pub fn run_request(req: wit::types::RequestHead) -> wit::types::RequestAction {
            T::on_request(&req.into()).into()
        }
    }

    #[cfg(all(target_os = "wasi", feature = "response"))]
    impl<T: crate::ResponseHook> Glue<T> {
        pub fn run_response(
            req: wit::types::RequestHead,
            resp: wit::types::ResponseHead,
            body: Option<Vec<u8>>,
        ) -> wit::types::ResponseEdit {
            T::on_response(&req.into(), &resp.into(), body.as_deref()).into()
        }
    }
}

/// Export `T: AdmitHook` as this component's `outpost:edge/admit-hook`.
///
/// Use once per crate, at item level; `, check: C` also exports `C: ConfigCheck` as
/// the load-time configuration check (without one, every configuration passes), as
/// [`export_check!`] does. A crate exporting several hooks exports its check once:
/// with one of them, or with `export_check!`. Off the component target it only checks the trait
/// bounds.
#[cfg(feature = "admit")]
#[macro_export]
macro_rules! export_admit {
    ($t:ty, check: $c:ty) => {
        $crate::export_admit!($t);
        $crate::export_check!($c);
    };
    ($t:ty) => {
        const _: fn() = $crate::__private::assert_admit::<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        type __OutpostAdmitGlue = $crate::__private::Glue<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, unused, clippy::all)]
        mod __outpost_admit_export {
            $crate::__outpost_generate!(
                world: "admit",
                with: {
                    "outpost:edge/types@0.1.0": ::outpost_guest::__private::wit::types,
                    "outpost:edge/host@0.1.0": ::outpost_guest::__private::wit::host,
                },
                runtime_path: "::outpost_guest::__private::wit_bindgen::rt",
                generate_all,
            );
            use super::__OutpostAdmitGlue as Glue;
            impl exports::outpost::edge::admit_hook::Guest for Glue {
                fn on_admit(
                    req: ::outpost_guest::__private::wit::types::RequestHead,
                ) -> ::outpost_guest::__private::wit::types::AdmitDecision {
                    Glue::run_admit(req)
                }
            }
            export!(Glue);
        }
    };
}

/// Export `T: RequestHook` as this component's `outpost:edge/request-hook`.
///
/// Use once per crate, at item level; `, check: C` also exports `C: ConfigCheck` as
/// the load-time configuration check (without one, every configuration passes), as
/// [`export_check!`] does. A crate exporting several hooks exports its check once:
/// with one of them, or with `export_check!`. Off the component target it only checks the trait
/// bounds.
#[cfg(feature = "request")]
#[macro_export]
macro_rules! export_request {
    ($t:ty, check: $c:ty) => {
        $crate::export_request!($t);
        $crate::export_check!($c);
    };
    ($t:ty) => {
        const _: fn() = $crate::__private::assert_request::<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        type __OutpostRequestGlue = $crate::__private::Glue<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, unused, clippy::all)]
        mod __outpost_request_export {
            $crate::__outpost_generate!(
                world: "request",
                with: {
                    "outpost:edge/types@0.1.0": ::outpost_guest::__private::wit::types,
                    "outpost:edge/host@0.1.0": ::outpost_guest::__private::wit::host,
                },
                runtime_path: "::outpost_guest::__private::wit_bindgen::rt",
                generate_all,
            );
            use super::__OutpostRequestGlue as Glue;
            impl exports::outpost::edge::request_hook::Guest for Glue {
                fn on_request(
                    req: ::outpost_guest::__private::wit::types::RequestHead,
                ) -> ::outpost_guest::__private::wit::types::RequestAction {
                    Glue::run_request(req)
                }
            }
            export!(Glue);
        }
    };
}

/// Export `T: ResponseHook` as this component's `outpost:edge/response-hook`.
///
/// Use once per crate, at item level; `, check: C` also exports `C: ConfigCheck` as
/// the load-time configuration check (without one, every configuration passes), as
/// [`export_check!`] does. A crate exporting several hooks exports its check once:
/// with one of them, or with `export_check!`. Off the component target it only checks the trait
/// bounds.
#[cfg(feature = "response")]
#[macro_export]
macro_rules! export_response {
    ($t:ty, check: $c:ty) => {
        $crate::export_response!($t);
        $crate::export_check!($c);
    };
    ($t:ty) => {
        const _: fn() = $crate::__private::assert_response::<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        type __OutpostResponseGlue = $crate::__private::Glue<$t>;
        #[cfg(target_os = "wasi")]
        #[doc(hidden)]
        #[allow(unsafe_code, missing_docs, unused, clippy::all)]
        mod __outpost_response_export {
            $crate::__outpost_generate!(
                world: "response",
                with: {
                    "outpost:edge/types@0.1.0": ::outpost_guest::__private::wit::types,
                    "outpost:edge/host@0.1.0": ::outpost_guest::__private::wit::host,
                },
                runtime_path: "::outpost_guest::__private::wit_bindgen::rt",
                generate_all,
            );
            use super::__OutpostResponseGlue as Glue;
            impl exports::outpost::edge::response_hook::Guest for Glue {
                fn on_response(
                    req: ::outpost_guest::__private::wit::types::RequestHead,
                    resp: ::outpost_guest::__private::wit::types::ResponseHead,
                    body: Option<Vec<u8>>,
                ) -> ::outpost_guest::__private::wit::types::ResponseEdit {
                    Glue::run_response(req, resp, body)
                }
            }
            export!(Glue);
        }
    };
}
