//! Which variants of a ladder to keep: the criteria ([`Caps`]) and the
//! invariants (keep the lowest, keep two when there were two), shared by HLS and
//! DASH.

/// What the filter knows about one HLS variant or DASH Representation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variant {
    /// Peak bandwidth, bits/s (`BANDWIDTH`, `@bandwidth`).
    pub bandwidth: Option<u64>,
    /// Average bandwidth, bits/s (HLS `AVERAGE-BANDWIDTH`).
    pub average_bandwidth: Option<u64>,
    /// Width in pixels.
    pub width: Option<u64>,
    /// Height in pixels.
    pub height: Option<u64>,
    /// Frames per second.
    pub frame_rate: Option<f64>,
    /// Codec strings (`avc1.640028`, `mp4a.40.2` ...), as written.
    pub codecs: Vec<String>,
}

impl Variant {
    /// The bandwidth the caps and the ordering use: `AVERAGE-BANDWIDTH` when
    /// `use_average` and present, else the peak `BANDWIDTH`.
    pub fn measure(&self, use_average: bool) -> Option<u64> {
        if use_average {
            self.average_bandwidth.or(self.bandwidth)
        } else {
            self.bandwidth
        }
    }
}

/// Limits a variant must respect. Several layers (global, client class, route,
/// brownout, CMCD) combine with [`Caps::merge`]: a variant must satisfy all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caps {
    /// Largest bandwidth, bits/s.
    pub max_bandwidth: Option<u64>,
    /// Largest width, pixels.
    pub max_width: Option<u64>,
    /// Largest height, pixels.
    pub max_height: Option<u64>,
    /// Largest frame rate.
    pub max_frame_rate: Option<f64>,
    /// Codec prefixes (lower-case) that disqualify a variant.
    pub deny_codecs: Vec<String>,
    /// Allow-lists of codec prefixes (lower-case): every codec of a variant
    /// must match a prefix of every list.
    pub allow_codecs: Vec<Vec<String>>,
}

fn min_opt<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b < a { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Tolerance for frame-rate comparisons (`29.970` vs `30000/1001`).
const FPS_EPSILON: f64 = 0.001;

impl Caps {
    /// The tighter of `self` and `other`, in place.
    pub fn merge(&mut self, other: &Caps) {
        self.max_bandwidth = min_opt(self.max_bandwidth, other.max_bandwidth);
        self.max_width = min_opt(self.max_width, other.max_width);
        self.max_height = min_opt(self.max_height, other.max_height);
        self.max_frame_rate = min_opt(self.max_frame_rate, other.max_frame_rate);
        for c in &other.deny_codecs {
            if !self.deny_codecs.contains(c) {
                self.deny_codecs.push(c.clone());
            }
        }
        for l in &other.allow_codecs {
            if !self.allow_codecs.contains(l) {
                self.allow_codecs.push(l.clone());
            }
        }
    }

    /// Lower the bandwidth cap to `cap`.
    pub fn cap_bandwidth(&mut self, cap: u64) {
        self.max_bandwidth = min_opt(self.max_bandwidth, Some(cap));
    }

    /// True when no limit is set: nothing would be dropped.
    pub fn is_unbounded(&self) -> bool {
        self.max_bandwidth.is_none()
            && self.max_width.is_none()
            && self.max_height.is_none()
            && self.max_frame_rate.is_none()
            && self.deny_codecs.is_empty()
            && self.allow_codecs.is_empty()
    }

    /// Does `v` respect every limit? An unknown property passes its limit.
    pub fn admits(&self, v: &Variant, use_average: bool) -> bool {
        let over = |value: Option<u64>, cap: Option<u64>| matches!((value, cap), (Some(v), Some(c)) if v > c);
        if over(v.measure(use_average), self.max_bandwidth)
            || over(v.width, self.max_width)
            || over(v.height, self.max_height)
        {
            return false;
        }
        if let (Some(fps), Some(max)) = (v.frame_rate, self.max_frame_rate)
            && fps > max + FPS_EPSILON
        {
            return false;
        }
        let codecs: Vec<String> = v
            .codecs
            .iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        let matches = |c: &str, list: &[String]| list.iter().any(|p| c.starts_with(p.as_str()));
        if codecs.iter().any(|c| matches(c, &self.deny_codecs)) {
            return false;
        }
        self.allow_codecs
            .iter()
            .all(|list| codecs.iter().all(|c| matches(c, list)))
    }
}

/// Which variants to keep (`true` = keep), in input order.
///
/// * A variant whose bandwidth is unknown is kept (it cannot be judged).
/// * A variant is kept when `caps` admits it.
/// * Every variant at the lowest bandwidth is kept.
/// * When there were at least two variants and fewer than two remain, dropped
///   variants are re-admitted from the lowest bandwidth up until two remain.
pub fn select(variants: &[Variant], caps: &Caps, use_average: bool) -> Vec<bool> {
    let lowest = variants.iter().filter_map(|v| v.measure(use_average)).min();
    let mut keep: Vec<bool> = variants
        .iter()
        .map(|v| match v.measure(use_average) {
            None => true,
            Some(bw) => Some(bw) == lowest || caps.admits(v, use_average),
        })
        .collect();
    if variants.len() >= 2 {
        let mut dropped: Vec<(u64, usize)> = variants
            .iter()
            .enumerate()
            .filter(|(i, _)| !keep.get(*i).copied().unwrap_or(true))
            .filter_map(|(i, v)| v.measure(use_average).map(|bw| (bw, i)))
            .collect();
        dropped.sort_unstable();
        let mut kept = keep.iter().filter(|k| **k).count();
        for (_, i) in dropped {
            if kept >= 2 {
                break;
            }
            if let Some(k) = keep.get_mut(i) {
                *k = true;
                kept += 1;
            }
        }
    }
    keep
}

/// Parse a frame rate: `30`, `29.970`, `30000/1001`. `None` unless finite and > 0.
pub fn parse_frame_rate(s: &str) -> Option<f64> {
    let s = s.trim();
    let value = match s.split_once('/') {
        Some((n, d)) => {
            let n: f64 = n.trim().parse().ok()?;
            let d: f64 = d.trim().parse().ok()?;
            if d == 0.0 {
                return None;
            }
            n / d
        }
        None => s.parse().ok()?,
    };
    (value.is_finite() && value > 0.0).then_some(value)
}

/// Parse a decimal integer (ASCII digits only, no sign).
pub fn parse_decimal(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Split a codec list (`avc1.640028,mp4a.40.2`) into its items.
pub fn split_codecs(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bw(b: u64) -> Variant {
        Variant {
            bandwidth: Some(b),
            ..Variant::default()
        }
    }

    #[test]
    fn keeps_lowest_and_two() {
        let v = [bw(3000), bw(1000), bw(2000), bw(500)];
        let caps = Caps {
            max_bandwidth: Some(1),
            ..Caps::default()
        };
        assert_eq!(select(&v, &caps, false), vec![false, true, false, true]);
        let caps = Caps {
            max_bandwidth: Some(2500),
            ..Caps::default()
        };
        assert_eq!(select(&v, &caps, false), vec![false, true, true, true]);
        assert_eq!(select(&[bw(9)], &caps, false), vec![true]);
        assert_eq!(select(&[], &caps, false), Vec::<bool>::new());
    }

    #[test]
    fn codecs_resolution_and_fps() {
        let v = Variant {
            bandwidth: Some(5),
            width: Some(1920),
            height: Some(1080),
            frame_rate: Some(59.94),
            codecs: vec!["hvc1.2.4.L123.B0".into(), "mp4a.40.2".into()],
            ..Variant::default()
        };
        let deny = Caps {
            deny_codecs: vec!["hev1".into(), "hvc1".into()],
            ..Caps::default()
        };
        assert!(!deny.admits(&v, false));
        let allow = Caps {
            allow_codecs: vec![vec!["avc1".into(), "mp4a".into()]],
            ..Caps::default()
        };
        assert!(!allow.admits(&v, false));
        let allow_hevc = Caps {
            allow_codecs: vec![vec!["hvc1".into(), "mp4a".into()]],
            ..Caps::default()
        };
        assert!(allow_hevc.admits(&v, false));
        let fps = Caps {
            max_frame_rate: Some(30.0),
            ..Caps::default()
        };
        assert!(!fps.admits(&v, false));
        let fps = Caps {
            max_frame_rate: Some(59.94),
            ..Caps::default()
        };
        assert!(fps.admits(&v, false));
        let h = Caps {
            max_height: Some(720),
            ..Caps::default()
        };
        assert!(!h.admits(&v, false));
        let w = Caps {
            max_width: Some(1920),
            ..Caps::default()
        };
        assert!(w.admits(&v, false));
    }

    #[test]
    fn parses_numbers() {
        assert_eq!(parse_frame_rate("30"), Some(30.0));
        assert!(parse_frame_rate("30000/1001").is_some_and(|f| (f - 29.97).abs() < 0.01));
        assert_eq!(parse_frame_rate("1/0"), None);
        assert_eq!(parse_frame_rate("-3"), None);
        assert_eq!(parse_frame_rate("NaN"), None);
        assert_eq!(parse_decimal("+5"), None);
        assert_eq!(parse_decimal("12"), Some(12));
    }
}
