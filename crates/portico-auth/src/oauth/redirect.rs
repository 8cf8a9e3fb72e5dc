//! The `redirect_uri` allow-list: where a finished OAuth login may send the user's browser.
//!
//! An entry matches a candidate with the same scheme, host and port and
//! - when the entry's path ends in `/`: a candidate path under it (`/app/` allows `/app/cb`);
//! - otherwise: the same path exactly.
//!
//! The candidate is parsed and normalised first (`/app/../admin` is `/admin`), and refused
//! outright when it carries user info (`https://good@evil`) or a fragment (the tokens go
//! there). Prefix matching on raw strings, the classic open redirect
//! (`https://good.example.evil.test`), never happens.

use url::Url;

/// The parsed allow-list.
#[derive(Debug, Clone, Default)]
pub struct RedirectAllowlist {
    entries: Vec<Url>,
}

impl RedirectAllowlist {
    /// The allow-list of these URLs; entries that are not absolute URLs are dropped with a
    /// warning (the config loader has checked them already).
    pub fn new(entries: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        let entries = entries
            .into_iter()
            .filter_map(|e| match Url::parse(e.as_ref()) {
                Ok(url) => Some(url),
                Err(error) => {
                    tracing::warn!(entry = e.as_ref(), %error, "redirect allow-list entry ignored");
                    None
                }
            })
            .collect();
        Self { entries }
    }

    /// Whether no entry is configured (every OAuth login is then refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The normalised candidate if an entry allows it.
    pub fn check(&self, candidate: &str) -> Option<Url> {
        let url = Url::parse(candidate).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.host().is_none()
        {
            return None;
        }
        self.entries
            .iter()
            .any(|entry| allows(entry, &url))
            .then_some(url)
    }
}

fn allows(entry: &Url, url: &Url) -> bool {
    if entry.scheme() != url.scheme()
        || entry.host() != url.host()
        || entry.port_or_known_default() != url.port_or_known_default()
    {
        return false;
    }
    if entry.path().ends_with('/') {
        url.path().starts_with(entry.path())
    } else {
        url.path() == entry.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_paths_under_a_slash_entry_and_exact_paths_otherwise() {
        let list = RedirectAllowlist::new(["http://127.0.0.1:8080/", "https://app.example/cb"]);
        for ok in [
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/dashboard?x=1",
            "https://app.example/cb",
            "https://app.example:443/cb?next=1",
        ] {
            assert!(list.check(ok).is_some(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:8081/",
            "https://127.0.0.1:8080/",
            "http://127.0.0.1:8080.evil.test/",
            "http://evil.test/?http://127.0.0.1:8080/",
            "http://user@127.0.0.1:8080/",
            "http://127.0.0.1:8080/#access_token=x",
            "https://app.example/cb/more",
            "https://app.example/cbx",
            "https://app.example.evil/cb",
            "javascript:alert(1)",
            "//127.0.0.1:8080/",
            "/relative",
            "",
        ] {
            assert!(list.check(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dot_segments_are_resolved_before_matching() {
        let list = RedirectAllowlist::new(["https://app.example/app/"]);
        assert!(list.check("https://app.example/app/../admin").is_none());
        let url = list.check("https://app.example/app/x/../cb").unwrap();
        assert_eq!(url.as_str(), "https://app.example/app/cb");
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let list = RedirectAllowlist::new(Vec::<String>::new());
        assert!(list.is_empty());
        assert!(list.check("http://127.0.0.1:8080/").is_none());
    }
}
