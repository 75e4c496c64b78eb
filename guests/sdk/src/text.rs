//! Text matching for the hot path: one pass over a header value for a whole table
//! of substrings (User-Agent tables), instead of one `str::contains` (and one
//! substring-searcher set-up) per table entry.

/// Does `hay` contain any of `needles`? Same answer as
/// `needles.iter().any(|n| hay.contains(n))` (an empty needle matches), in one pass
/// over `hay`: a 256-entry table maps each byte to the set (a bit mask) of needles
/// starting with it, so a position no needle starts at costs one lookup and only
/// the needles starting there are compared. Tables of more than 64 needles are
/// matched 64 at a time. The table is built on every call; for fixed tables, a
/// [`Prepared`] is built at compile time.
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
    scan(
        h,
        |b| u128::from(starting[usize::from(b)]),
        |i, j| h[i..].starts_with(needles[j].as_ref().as_bytes()),
    )
}

/// The pass both matchers make: at each position `i` of `h`, each candidate `j`
/// of `starting(h[i])` (a bit set) is handed to `visit(i, j)`; the scan stops, and
/// answers true, when `visit` does.
fn scan(
    h: &[u8],
    starting: impl Fn(u8) -> u128,
    mut visit: impl FnMut(usize, usize) -> bool,
) -> bool {
    h.iter().enumerate().any(|(i, &b)| {
        let mut set = starting(b);
        while set != 0 {
            if visit(i, set.trailing_zeros() as usize) {
                return true;
            }
            set &= set - 1;
        }
        false
    })
}

/// Fixed tables of substrings (at most 64 tables, `N` ≤ 128 non-empty needles in
/// all), indexed at compile time: [`Prepared::find`] says, in one pass over a
/// text, which tables have an entry in it.
///
/// Build it in a `static` with [`Prepared::new`]: the index is then part of the
/// guest's data, so a fresh instance pays nothing to build it (a table built at
/// run time would be built again in every instance, that is for every request).
///
/// ```
/// use outpost_guest::text::Prepared;
/// static T: Prepared<3> = Prepared::new(&[&["bot", "crawl"], &["ipad"]]);
/// assert_eq!(T.find("googlebot on an ipad"), 0b11);
/// assert_eq!(T.find("a crawler"), 0b01);
/// assert_eq!(T.find("desktop"), 0);
/// ```
#[derive(Debug)]
pub struct Prepared<const N: usize> {
    /// For each byte, the needles (bits) starting with it.
    starting: [u128; 256],
    /// Each needle and its table's bit.
    needles: [(&'static str, u64); N],
    /// Tables with an empty needle: they match any text.
    always: u64,
    /// Every table's bit.
    all: u64,
}

impl<const N: usize> Prepared<N> {
    /// Index `tables`; table `t` is bit `1 << t` of [`Prepared::find`]'s answer.
    ///
    /// # Panics
    /// (At compile time, in a `static`.) With more than 64 tables, more than 128
    /// needles, or a needle count (empty needles excluded) other than `N`.
    pub const fn new(tables: &[&[&'static str]]) -> Self {
        assert!(tables.len() <= 64, "Prepared: at most 64 tables");
        assert!(N <= 128, "Prepared: at most 128 needles");
        let mut p = Prepared {
            starting: [0; 256],
            needles: [("", 0); N],
            always: 0,
            all: ((1u128 << tables.len()) - 1) as u64,
        };
        let mut j = 0;
        let mut t = 0;
        while t < tables.len() {
            let bit = 1u64 << t;
            let mut k = 0;
            while k < tables[t].len() {
                let needle = tables[t][k];
                if needle.is_empty() {
                    p.always |= bit;
                } else {
                    assert!(j < N, "Prepared: more needles than N");
                    p.starting[needle.as_bytes()[0] as usize] |= 1 << j;
                    p.needles[j] = (needle, bit);
                    j += 1;
                }
                k += 1;
            }
            t += 1;
        }
        assert!(j == N, "Prepared: fewer needles than N");
        p
    }

    /// The tables that have an entry in `hay`: bit `1 << t` for table `t`.
    pub fn find(&self, hay: &str) -> u64 {
        let mut found = self.always;
        let h = hay.as_bytes();
        scan(
            h,
            |b| self.starting[usize::from(b)],
            |i, j| {
                let (needle, bit) = self.needles[j];
                if found & bit == 0 && h[i..].starts_with(needle.as_bytes()) {
                    found |= bit;
                }
                found == self.all
            },
        );
        found
    }
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

        #[test]
        fn prepared_tables_agree_with_str_contains(hay in "[a-e /é]{0,60}") {
            const TABLES: [&[&str]; 4] =
                [&["ab", "é/", "ccc"], &[], &["d", "bd", "e é"], &["a", "abcde", "/"]];
            static T: Prepared<9> = Prepared::new(&TABLES);
            let found = T.find(&hay);
            for (t, needles) in TABLES.iter().enumerate() {
                let expected = needles.iter().any(|n| hay.contains(n));
                prop_assert_eq!(found & (1 << t) != 0, expected, "table {}", t);
            }
            prop_assert_eq!(found >> TABLES.len(), 0);
        }
    }

    #[test]
    fn prepared_empty_needle_matches_anything() {
        static T: Prepared<1> = Prepared::new(&[&["x"], &[""]]);
        assert_eq!(T.find(""), 0b10);
        assert_eq!(T.find("x"), 0b11);
    }
}
