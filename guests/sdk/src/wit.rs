//! The wit-bindgen bindings of the host imports and the shared types, and the
//! conversions to and from this crate's native types. Component target
//! (`target_os = "wasi"`) only.
//!
//! Only imports are generated here. Each guest generates the export side of the
//! world it implements through the `export_*!` macros, so its component exports
//! exactly the hooks it implements.

#![allow(unsafe_code, missing_docs, clippy::all)]

mod bindings {
    wit_bindgen::generate!({
        // `wit` links to the repository's `wit/`; the packaged crate holds the file.
        path: "wit",
        inline: "
            package outpost:guest-sdk;
            world sdk {
                import outpost:edge/types@0.1.0;
                import outpost:edge/host@0.1.0;
            }
        ",
        world: "outpost:guest-sdk/sdk",
        generate_unused_types: true,
        generate_all,
    });
}

pub use bindings::outpost::edge::{host, types};

use crate::types as n;
use types as w;

impl From<w::Header> for n::Header {
    fn from(h: w::Header) -> Self {
        Self {
            name: h.name,
            value: h.value,
        }
    }
}

impl From<n::Header> for w::Header {
    fn from(h: n::Header) -> Self {
        Self {
            name: h.name,
            value: h.value,
        }
    }
}

fn headers_in(v: Vec<w::Header>) -> Vec<n::Header> {
    v.into_iter().map(Into::into).collect()
}

fn headers_out(v: Vec<n::Header>) -> Vec<w::Header> {
    v.into_iter().map(Into::into).collect()
}

impl From<w::RequestHead> for n::RequestHead {
    fn from(r: w::RequestHead) -> Self {
        Self {
            method: r.method,
            scheme: r.scheme,
            authority: r.authority,
            path: r.path,
            query: r.query,
            headers: headers_in(r.headers),
            client: n::ClientInfo {
                ip: r.client.ip,
                country: r.client.country,
            },
            route: r.route,
            id: r.id,
        }
    }
}

impl From<w::ResponseHead> for n::ResponseHead {
    fn from(r: w::ResponseHead) -> Self {
        Self {
            status: r.status,
            headers: headers_in(r.headers),
        }
    }
}

impl From<n::Response> for w::Response {
    fn from(r: n::Response) -> Self {
        Self {
            status: r.status,
            headers: headers_out(r.headers),
            body: r.body,
        }
    }
}

impl From<n::HeaderOp> for w::HeaderOp {
    fn from(op: n::HeaderOp) -> Self {
        match op {
            n::HeaderOp::Set(h) => w::HeaderOp::Set(h.into()),
            n::HeaderOp::Append(h) => w::HeaderOp::Append(h.into()),
            n::HeaderOp::Remove(name) => w::HeaderOp::Remove(name),
        }
    }
}

fn ops_out(v: Vec<n::HeaderOp>) -> Vec<w::HeaderOp> {
    v.into_iter().map(Into::into).collect()
}

impl From<n::PriorityClass> for w::PriorityClass {
    fn from(c: n::PriorityClass) -> Self {
        match c {
            n::PriorityClass::Critical => w::PriorityClass::Critical,
            n::PriorityClass::High => w::PriorityClass::High,
            n::PriorityClass::Normal => w::PriorityClass::Normal,
            n::PriorityClass::Low => w::PriorityClass::Low,
            n::PriorityClass::Bulk => w::PriorityClass::Bulk,
        }
    }
}

impl From<n::AdmitDecision> for w::AdmitDecision {
    fn from(d: n::AdmitDecision) -> Self {
        match d {
            n::AdmitDecision::Admit(a) => w::AdmitDecision::Admit(w::Admission {
                class: a.class.into(),
                cost: a.cost,
                client_key: a.client_key,
            }),
            n::AdmitDecision::Reject(r) => w::AdmitDecision::Reject(r.into()),
        }
    }
}

impl From<n::RequestEdit> for w::RequestEdit {
    fn from(e: n::RequestEdit) -> Self {
        Self {
            method: e.method,
            path: e.path,
            query: e.query,
            headers: ops_out(e.headers),
            origin: e.origin,
        }
    }
}

impl From<n::RequestAction> for w::RequestAction {
    fn from(a: n::RequestAction) -> Self {
        match a {
            n::RequestAction::Forward(e) => w::RequestAction::Forward(e.into()),
            n::RequestAction::Respond(r) => w::RequestAction::Respond(r.into()),
        }
    }
}

impl From<n::ResponseEdit> for w::ResponseEdit {
    fn from(e: n::ResponseEdit) -> Self {
        Self {
            status: e.status,
            headers: ops_out(e.headers),
            body: e.body,
        }
    }
}

impl From<n::LogLevel> for host::LogLevel {
    fn from(l: n::LogLevel) -> Self {
        match l {
            n::LogLevel::Trace => host::LogLevel::Trace,
            n::LogLevel::Debug => host::LogLevel::Debug,
            n::LogLevel::Info => host::LogLevel::Info,
            n::LogLevel::Warn => host::LogLevel::Warn,
            n::LogLevel::Error => host::LogLevel::Error,
        }
    }
}

impl From<host::LoadSignals> for n::LoadSignals {
    fn from(l: host::LoadSignals) -> Self {
        Self {
            in_flight: l.in_flight,
            limit: l.limit,
            queued: l.queued,
            queue_delay_us: l.queue_delay_us,
            shed_rate: l.shed_rate,
            shed_rate_by_class: l.shed_rate_by_class,
            origin_latency_us: l.origin_latency_us,
            origin_min_latency_us: l.origin_min_latency_us,
            utilization: l.utilization,
        }
    }
}
