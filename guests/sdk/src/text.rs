//! Text matching for the hot path: one pass over a header value for a whole table
//! of substrings (User-Agent tables), instead of one `str::contains` (and one
//! substring-searcher set-up) per table entry.

/// Does `hay` contain any of `needles`? Same answer as
/// `needles.iter().any(|n| hay.contains(n))` (an empty needle matches), in one pass
/// over `hay`: a 256-entry table maps each byte to the set (a bit mask) of needles
/// starting with it, so a position no needle starts at costs one lookup and only
/// the needles starting there are compared. Tables of more than 64 needles are
/// matched 64 at a time.
pub fn contains_any<S: AsRef<str>>(hay: &str, needles: &[S]) -> bool {
    if needles.len() > 64 {
        return needles.chunks(64).any(|chunk| contains_any(hay, chunk));
    }
    let mut starting = [0u64; 256];
    for (j, n) in needles.iter().enumerate() {
        match n.as_ref().as_bytes().first() {
            Some(&b) => starting[usize::from(b)] |= 1 << j,
            None => return true,
        }
    }
    let h = hay.as_bytes();
    h.iter().enumerate().any(|(i, &b)| {
        let mut set = starting[usize::from(b)];
        while set != 0 {
            let j = set.trailing_zeros() as usize;
            if h[i..].starts_with(needles[j].as_ref().as_bytes()) {
                return true;
            }
            set &= set - 1;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_needles_anywhere() {
        let table = ["bot", "crawl", "smart-tv", "ipad"];
        assert!(contains_any("googlebot/2.1", &table));
        assert!(contains_any("mozilla (ipad; cpu os 17)", &table));
        assert!(contains_any("bot", &table));
        assert!(contains_any("x smart-tv", &table));
        assert!(!contains_any("mozilla/5.0 (x11; linux)", &table));
        assert!(!contains_any("smart-t", &table));
        assert!(!contains_any("", &table));
        assert!(contains_any("anything", &[""]));
        assert!(!contains_any::<&str>("anything", &[]));
        // Multi-byte text is compared byte for byte, like `str::contains`.
        assert!(contains_any("naïve ünïcode", &["ünï"]));
    }

    proptest! {
        #[test]
        fn agrees_with_str_contains(
            hay in "[a-e /é]{0,40}",
            needles in proptest::collection::vec("[a-e /é]{0,4}", 0..8),
        ) {
            let expected = needles.iter().any(|n| hay.contains(n.as_str()));
            prop_assert_eq!(contains_any(&hay, &needles), expected);
        }

        #[test]
        fn large_tables_agree_with_str_contains(
            hay in "[a-h /é]{0,40}",
            // Up to 100 non-empty needles: tables past 64 are matched in chunks.
            needles in proptest::collection::vec("[a-h /é]{2,5}", 0..100),
        ) {
            let expected = needles.iter().any(|n| hay.contains(n.as_str()));
            prop_assert_eq!(contains_any(&hay, &needles), expected);
        }
    }
}
