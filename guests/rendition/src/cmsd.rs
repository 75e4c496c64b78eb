//! CMSD, Common Media Server Data (CTA-5006): what the edge tells the player.

/// The server identifier of this edge's `CMSD-Dynamic` entry.
pub const SERVER_ID: &str = "outpost";

/// The header name.
pub const DYNAMIC: &str = "cmsd-dynamic";

/// A `CMSD-Dynamic` entry (a Structured Fields list member): the quoted server
/// identifier with `etp` (estimated throughput, kbps) and `mb` (max suggested
/// bitrate, kbps) parameters, e.g. `"outpost";etp=8000;mb=3000`. `None` when
/// there is nothing to say.
pub fn dynamic_entry(server: &str, etp_kbps: Option<u64>, mb_kbps: Option<u64>) -> Option<String> {
    if etp_kbps.is_none() && mb_kbps.is_none() {
        return None;
    }
    let mut out = String::with_capacity(40);
    out.push('"');
    for c in server.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    if let Some(etp) = etp_kbps {
        out.push_str(&format!(";etp={etp}"));
    }
    if let Some(mb) = mb_kbps {
        out.push_str(&format!(";mb={mb}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_entries() {
        assert_eq!(
            dynamic_entry(SERVER_ID, Some(8000), Some(3000)).as_deref(),
            Some("\"outpost\";etp=8000;mb=3000")
        );
        assert_eq!(
            dynamic_entry(SERVER_ID, Some(8000), None).as_deref(),
            Some("\"outpost\";etp=8000")
        );
        assert_eq!(
            dynamic_entry(SERVER_ID, None, Some(1500)).as_deref(),
            Some("\"outpost\";mb=1500")
        );
        assert_eq!(dynamic_entry(SERVER_ID, None, None), None);
        assert_eq!(
            dynamic_entry("a\"b\\c\n", Some(1), None).as_deref(),
            Some("\"a\\\"b\\\\c\";etp=1")
        );
    }
}
