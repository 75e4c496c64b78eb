//! Shared by the guest fuzz targets: filter caps derived from the first bytes of an
//! input, so one input is both the caps and the manifest.

use rendition::select::Caps;

/// Bytes of an input that make up the caps; the manifest is the rest.
pub const CAPS_LEN: usize = 10;

/// Codec prefixes the deny/allow lists pick from (`""` matches every codec).
const CODECS: [&str; 8] = ["avc1", "hvc1", "hev1", "av01", "mp4a", "ec-3", "vp09", ""];

/// Split `data` into (caps, use_average, manifest). Short inputs are zero-padded.
///
/// Header layout (10 bytes):
/// - `[0]` flags: bit 0 `use_average`, bit 1 `max_bandwidth`, bit 2 `max_width`,
///   bit 3 `max_height`, bit 4 `max_frame_rate`, bit 5 deny codecs, bit 6 allow
///   codecs, bit 7 a huge bandwidth cap (`bw << 32 | bw`);
/// - `[1..5]` bandwidth cap, u32 little-endian, bits/s;
/// - `[5]` width cap ×16; `[6]` height cap ×8; `[7]` frame-rate cap /4;
/// - `[8]` two deny prefixes (bits 0-2, 3-5) of `CODECS`;
/// - `[9]` one allow list of two prefixes (bits 0-2, 3-5), a second list of the
///   first prefix alone when bit 6 is set.
pub fn split_caps(data: &[u8]) -> (Caps, bool, &[u8]) {
    let mut h = [0u8; CAPS_LEN];
    let n = data.len().min(CAPS_LEN);
    h[..n].copy_from_slice(&data[..n]);
    let body = &data[n..];
    let flags = h[0];
    let bit = |i: u8| flags & (1 << i) != 0;
    let bw = u64::from(u32::from_le_bytes([h[1], h[2], h[3], h[4]]));
    let pick = |b: u8| CODECS[usize::from(b & 7)].to_string();
    let mut caps = Caps::default();
    if bit(1) {
        caps.max_bandwidth = Some(if bit(7) { (bw << 32) | bw } else { bw });
    }
    if bit(2) {
        caps.max_width = Some(u64::from(h[5]) * 16);
    }
    if bit(3) {
        caps.max_height = Some(u64::from(h[6]) * 8);
    }
    if bit(4) {
        caps.max_frame_rate = Some(f64::from(h[7]) / 4.0);
    }
    if bit(5) {
        caps.deny_codecs = vec![pick(h[8]), pick(h[8] >> 3)];
    }
    if bit(6) {
        caps.allow_codecs = vec![vec![pick(h[9]), pick(h[9] >> 3)]];
        if h[9] & 0x40 != 0 {
            caps.allow_codecs.push(vec![pick(h[9])]);
        }
    }
    (caps, bit(0), body)
}
