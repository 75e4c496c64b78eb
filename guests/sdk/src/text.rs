//! Text matching for the hot path: one pass over a header value for a whole table
//! of substrings (User-Agent tables), instead of one `str::contains` (and one
//! substring-searcher set-up) per table entry.

/// Does `hay` contain any of `needles`? Same answer as
/// `needles.iter().any(|n| hay.contains(n))` (an empty needle matches), in one pass
/// over `hay`: a 256-entry table of the needles' first bytes skips every position
/// no needle can start at, and only the needles starting with that byte are
/// compared.
pub fn contains_any<S: AsRef<str>>(hay: &str, needles: &[S]) -> bool {
    let mut first = [false; 256];
    for n in needles {
        match n.as_ref().as_bytes().first() {
            Some(&b) => first[usize::from(b)] = true,
            None => return true,
        }
    }
    let h = hay.as_bytes();
    h.iter().enumerate().any(|(i, &b)| {
        first[usize::from(b)]
            && needles.iter().any(|n| {
                let n = n.as_ref().as_bytes();
                n[0] == b && h[i..].starts_with(n)
            })
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
    }
}
