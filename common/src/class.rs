//! Priority classes (`priority-class` in the WIT), highest first: the limiter
//! admits a higher class first and sheds the lowest first.

/// Number of priority classes.
pub const CLASSES: usize = 5;

/// Class names, highest first, as the WIT, the config, metrics and decisions
/// spell them.
pub const CLASS_NAMES: [&str; CLASSES] = ["critical", "high", "normal", "low", "bulk"];

/// The index of the `normal` class (what a request gets when nothing classifies it).
pub const NORMAL: usize = 2;

/// The index of the class called `name` (ASCII case-insensitive).
pub fn index_of(name: &str) -> Option<usize> {
    CLASS_NAMES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_agree() {
        for (i, n) in CLASS_NAMES.iter().enumerate() {
            assert_eq!(index_of(n), Some(i));
        }
        assert_eq!(index_of(" Critical "), Some(0));
        assert_eq!(CLASS_NAMES[NORMAL], "normal");
        assert_eq!(index_of("urgent"), None);
    }
}
