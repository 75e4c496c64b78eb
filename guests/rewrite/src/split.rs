//! Sticky weighted bucketing: FNV-1a 64 followed by the splitmix64 finalizer.

/// A stable 64-bit hash of `bytes` (the same on every node, build and run).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The arm index for `key` in split `name` with `weights`: `stable_hash(name +
/// ":" + key) % total`, walked through the cumulative weights. `None` when the
/// weights sum to zero.
pub fn pick(name: &str, key: &str, weights: &[u64]) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut buf = Vec::with_capacity(name.len() + 1 + key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(key.as_bytes());
    let mut bucket = stable_hash(&buf) % total;
    for (i, w) in weights.iter().enumerate() {
        if bucket < *w {
            return Some(i);
        }
        bucket -= w;
    }
    None
}
