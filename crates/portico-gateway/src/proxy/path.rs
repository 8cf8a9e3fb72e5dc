//! Request paths the gateway refuses to route.
//!
//! A dot segment (`.` or `..`, also percent-encoded, also between encoded slashes or
//! backslashes) could climb out of a route's rewrite target once the upstream normalizes
//! the path (`/api/etl/../admin` → `/api/v1/../admin` → `/api/admin`). Such paths are
//! refused (400 `REQ_001`) rather than normalized, so no two spellings reach one upstream path.

/// Whether `path` has a dot segment, in any spelling.
pub(crate) fn has_dot_segments(path: &str) -> bool {
    // Without a dot or an escape there is nothing to decode or compare (most paths).
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|segment| {
        let decoded = percent_decode(segment);
        decoded
            .split(['/', '\\'])
            .any(|part| part == "." || part == "..")
    })
}

/// `%XX` escapes decoded (invalid ones kept as they are), as lossy UTF-8.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_in_every_spelling() {
        for bad in [
            "/api/etl/../admin",
            "/api/etl/./x",
            "/api/etl/..",
            "/api/etl/%2e%2e/admin",
            "/api/etl/%2E./admin",
            "/api/etl/x%2f..%2fadmin",
            "/api/etl/x%5c..%5cadmin",
            "/api/etl/x\\..\\admin",
        ] {
            assert!(has_dot_segments(bad), "{bad}");
        }
        for good in [
            "/",
            "/api/etl/jobs/start",
            "/api/etl/file.txt",
            "/api/etl/...",
            "/api/etl/.well-known",
            "/api/etl/a..b",
            "/api/etl/%zz",
        ] {
            assert!(!has_dot_segments(good), "{good}");
        }
    }
}
