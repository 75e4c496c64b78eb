//! The bounds of a guest's shared store (`host.shared-get` / `shared-set`): the node
//! enforces them, and the SDK's native test double enforces the same, so a guest
//! tested natively meets the same store on the node.

/// Keys one guest's store holds at most.
pub const MAX_KEYS: usize = 1024;
/// Longest key, bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest value, bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Whether a write of `key` = `value` fits a store that holds `len` keys, of which
/// `exists` tells whether `key` is one. The error says why it is dropped.
pub fn check_write(key: &str, value: &str, len: usize, exists: bool) -> Result<(), &'static str> {
    if key.len() > MAX_KEY_BYTES {
        return Err("key longer than 128 bytes");
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err("value longer than 1024 bytes");
    }
    if len >= MAX_KEYS && !exists {
        return Err("store full (1024 keys)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_a_bound_are_refused() {
        assert!(check_write("k", "v", 0, false).is_ok());
        assert!(check_write(&"k".repeat(129), "v", 0, false).is_err());
        assert!(check_write("k", &"v".repeat(1025), 0, false).is_err());
        assert!(check_write("k", "v", MAX_KEYS, false).is_err());
        assert!(
            check_write("k", "v", MAX_KEYS, true).is_ok(),
            "an update fits"
        );
    }
}
