//! Applying what a guest returns: header operations, validated whole before any
//! applies, so a bad edit leaves the head exactly as it was.

use http::header::{HeaderName, HeaderValue};

use super::types::{self, HeaderOp};
use crate::error::GuestError;

/// The guest returned something invalid.
pub fn invalid(guest: &str, message: String) -> GuestError {
    GuestError::Invalid {
        guest: guest.to_string(),
        message,
    }
}

/// A header a guest wrote must be a valid HTTP header.
pub fn check_header(guest: &str, h: &types::Header) -> Result<(), GuestError> {
    HeaderName::from_bytes(h.name.as_bytes())
        .map_err(|_| invalid(guest, format!("bad header name {:?}", h.name)))?;
    HeaderValue::from_bytes(&h.value)
        .map_err(|_| invalid(guest, format!("bad value for header {:?}", h.name)))?;
    Ok(())
}

/// Apply header operations to a WIT header list. Every op is validated before any is
/// applied, so a bad edit leaves the list untouched. `set` replaces every field of
/// that name (case-insensitively); `append` adds one; `remove` removes all.
pub fn apply_header_ops(
    headers: &mut Vec<types::Header>,
    ops: Vec<HeaderOp>,
    guest: &str,
) -> Result<(), GuestError> {
    for op in &ops {
        if let HeaderOp::Set(h) | HeaderOp::Append(h) = op {
            check_header(guest, h)?;
        }
    }
    for op in ops {
        match op {
            HeaderOp::Set(mut h) => {
                h.name.make_ascii_lowercase();
                headers.retain(|x| !x.name.eq_ignore_ascii_case(&h.name));
                headers.push(h);
            }
            HeaderOp::Append(mut h) => {
                h.name.make_ascii_lowercase();
                headers.push(h);
            }
            HeaderOp::Remove(name) => headers.retain(|x| !x.name.eq_ignore_ascii_case(&name)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> types::Header {
        types::Header {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn pairs(hs: &[types::Header]) -> Vec<(String, Vec<u8>)> {
        hs.iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    }

    #[test]
    fn set_replaces_append_adds_remove_removes_all() {
        let mut hs = vec![h("x-a", "1"), h("X-A", "2"), h("x-b", "3")];
        apply_header_ops(
            &mut hs,
            vec![
                HeaderOp::Set(h("X-A", "9")),
                HeaderOp::Append(h("X-C", "4")),
                HeaderOp::Remove("x-b".into()),
            ],
            "g",
        )
        .expect("valid ops");
        assert_eq!(pairs(&hs), pairs(&[h("x-a", "9"), h("x-c", "4")]));
    }

    #[test]
    fn one_bad_op_applies_none() {
        let mut hs = vec![h("x-a", "1")];
        let before = pairs(&hs);
        let r = apply_header_ops(
            &mut hs,
            vec![
                HeaderOp::Remove("x-a".into()),
                HeaderOp::Set(h("x-b", "bad\nvalue")),
            ],
            "g",
        );
        assert!(matches!(r, Err(GuestError::Invalid { .. })));
        assert_eq!(pairs(&hs), before);
    }
}
