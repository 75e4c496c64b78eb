//! Signed URLs: lower-case hex HMAC-SHA256 over `"<path>:<expires>"`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], path: &str, expires: u64) -> Option<HmacSha256> {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).ok()?;
    mac.update(path.as_bytes());
    mac.update(b":");
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

/// The token for `path` valid until `expires` (Unix seconds): lower-case hex
/// HMAC-SHA256(secret, "<path>:<expires>").
pub fn sign_path(secret: &[u8], path: &str, expires: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let Some(mac) = mac(secret, path, expires) else {
        return String::new();
    };
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

/// Is `token` (hex, either case) the token of `path` and `expires`? The MAC is
/// compared in constant time.
pub fn verify(secret: &[u8], path: &str, expires: u64, token: &str) -> bool {
    let t = token.as_bytes();
    if t.len() != 64 {
        return false;
    }
    let mut bytes = [0u8; 32];
    for (i, out) in bytes.iter_mut().enumerate() {
        let (Some(hi), Some(lo)) = (
            t.get(2 * i)
                .copied()
                .and_then(outpost_guest::url::hex_value),
            t.get(2 * i + 1)
                .copied()
                .and_then(outpost_guest::url::hex_value),
        ) else {
            return false;
        };
        *out = hi << 4 | lo;
    }
    mac(secret, path, expires).is_some_and(|m| m.verify_slice(&bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_style_known_answer() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        // is a published test vector; here the message is "<path>:<expires>".
        let mut m = <HmacSha256 as Mac>::new_from_slice(b"key").unwrap();
        m.update(b"The quick brown fox jumps over the lazy dog");
        let hex: String = m
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let t = sign_path(b"k", "/a", 10);
        assert_eq!(t.len(), 64);
        assert!(verify(b"k", "/a", 10, &t));
        assert!(verify(b"k", "/a", 10, &t.to_ascii_uppercase()));
        assert!(!verify(b"k", "/a", 11, &t));
        assert!(!verify(b"k", "/b", 10, &t));
        assert!(!verify(b"j", "/a", 10, &t));
        assert!(!verify(b"k", "/a", 10, &t[..62]));
        assert!(!verify(b"k", "/a", 10, "zz"));
    }
}
