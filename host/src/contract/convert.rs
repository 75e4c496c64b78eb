//! `http` ↔ WIT conversions: header lists, the edge responses guests build, the
//! priority class.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::edit::{check_header, invalid};
use super::types::{self, PriorityClass};
use crate::body::{self, Body};
use crate::error::GuestError;

/// A header map as the WIT header list (names lower case, values as bytes).
pub fn headers_to_wit(h: &HeaderMap) -> Vec<types::Header> {
    h.iter()
        .map(|(k, v)| types::Header {
            name: k.as_str().to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// Append a WIT header list to a header map, skipping what is not a valid header
/// (HTTP/2 pseudo-headers never appear in a `HeaderMap`). Guests' lists were
/// validated when their edits were applied.
pub fn append_wit_headers(into: &mut HeaderMap, headers: &[types::Header]) {
    for h in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            into.append(n, v);
        }
    }
}

/// The index of a class, highest first (`critical` is 0).
pub fn class_index(c: PriorityClass) -> usize {
    match c {
        PriorityClass::Critical => 0,
        PriorityClass::High => 1,
        PriorityClass::Normal => 2,
        PriorityClass::Low => 3,
        PriorityClass::Bulk => 4,
    }
}

pub use outpost_common::class::NORMAL;

/// A response a guest answers with at the edge, validated: a bad status or header
/// is the guest's error.
pub fn edge_response(r: types::Response, guest: &str) -> Result<Response<Body>, GuestError> {
    let status = StatusCode::from_u16(r.status)
        .map_err(|_| invalid(guest, format!("bad status {}", r.status)))?;
    for h in &r.headers {
        check_header(guest, h)?;
    }
    let mut resp = Response::new(body::full(r.body));
    *resp.status_mut() = status;
    append_wit_headers(resp.headers_mut(), &r.headers);
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_invalid_ones_are_skipped() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut wit = headers_to_wit(&h);
        assert_eq!(wit.len(), 2);
        wit.push(types::Header {
            name: ":path".into(),
            value: b"/".to_vec(),
        });
        let mut back = HeaderMap::new();
        append_wit_headers(&mut back, &wit);
        assert_eq!(back, h);
    }

    #[test]
    fn an_edge_response_with_a_bad_header_is_the_guests_error() {
        let r = types::Response {
            status: 403,
            headers: vec![types::Header {
                name: "bad name".into(),
                value: b"x".to_vec(),
            }],
            body: Vec::new(),
        };
        assert!(matches!(
            edge_response(r, "g"),
            Err(GuestError::Invalid { .. })
        ));
        let bad_status = types::Response {
            status: 1000,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(edge_response(bad_status, "g").is_err());
    }
}
