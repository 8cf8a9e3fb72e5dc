//! The checked value types of the config that the standard library does not have: secrets,
//! URLs with a known scheme, HTTP paths and the small enums of the schema.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{HeaderName, Uri};
use portico_resilience::Preset;

use super::reader::{Leaf, mismatch, text};
use super::tree::Node;

/// A secret from the config (client secrets, internal tokens). Its `Debug` and `Display`
/// never show the value; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Leaf for Secret {
    fn from_node(node: &Node) -> Result<Self, String> {
        // Never echo the value in a problem: only its type or emptiness.
        match node.as_text() {
            Some("") => Err("must not be empty".to_owned()),
            Some(s) => Ok(Secret(s.to_owned())),
            None => Err(mismatch("a string", node)),
        }
    }
}

/// The URL schemes a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `http`, `https`.
    Http,
    /// `postgres`, `postgresql`, `sqlite`.
    Database,
    /// `redis`, `rediss`.
    Redis,
}

impl Schemes {
    fn names(self) -> &'static [&'static str] {
        match self {
            Schemes::Http => &["http", "https"],
            Schemes::Database => &["postgres", "postgresql", "sqlite"],
            Schemes::Redis => &["redis", "rediss"],
        }
    }
}

/// A URL whose scheme is one the key accepts. `Debug`/`Display` hide a password in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    text: String,
    scheme_len: usize,
}

impl Url {
    /// Checks `text` as a URL with one of `schemes`.
    pub fn parse(text: &str, schemes: Schemes) -> Result<Self, String> {
        let expected = schemes.names().join(", ");
        let Some((scheme, rest)) = text.split_once("://") else {
            // `sqlite:path` is also a sqlite URL.
            if schemes == Schemes::Database && text.starts_with("sqlite:") && text.len() > 7 {
                return Ok(Self {
                    text: text.to_owned(),
                    scheme_len: 6,
                });
            }
            return Err(format!(
                "invalid URL {text:?} (expected scheme://…, scheme one of: {expected})"
            ));
        };
        let lower = scheme.to_ascii_lowercase();
        if !schemes.names().contains(&lower.as_str()) {
            return Err(format!(
                "unsupported URL scheme {scheme:?} in {:?} (expected one of: {expected})",
                redact(text)
            ));
        }
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(format!("invalid URL {:?}", redact(text)));
        }
        if schemes == Schemes::Http {
            let uri: Uri = text
                .parse()
                .map_err(|e| format!("invalid URL {:?}: {e}", redact(text)))?;
            if uri.host().is_none_or(str::is_empty) {
                return Err(format!("invalid URL {:?}: no host", redact(text)));
            }
        }
        Ok(Self {
            text: text.to_owned(),
            scheme_len: scheme.len(),
        })
    }

    /// The URL as written (including any password: do not log it, log `Display` instead).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme as written (`http`, `postgres`, …).
    pub fn scheme(&self) -> &str {
        &self.text[..self.scheme_len]
    }
}

/// `user:password@` → `user:***@`.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => text.to_owned(),
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.text))
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({:?})", redact(&self.text))
    }
}

/// An HTTP URL (`http`/`https`).
pub(crate) struct HttpUrl(pub(crate) Url);

impl Leaf for HttpUrl {
    fn from_node(node: &Node) -> Result<Self, String> {
        Url::parse(text(node)?, Schemes::Http).map(HttpUrl)
    }
}

/// An optional URL of the given schemes: the empty string means "not set".
pub(crate) fn optional_url(node: &Node, schemes: Schemes) -> Result<Option<Url>, String> {
    match text(node)? {
        "" => Ok(None),
        s => Url::parse(s, schemes).map(Some),
    }
}

/// An absolute URL path (`/api/v1`): starts with `/`, no spaces, no query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UrlPath(String);

impl UrlPath {
    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Leaf for UrlPath {
    fn from_node(node: &Node) -> Result<Self, String> {
        let s = text(node)?;
        if !s.starts_with('/') {
            return Err(format!("{s:?} must start with \"/\""));
        }
        if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{s:?} is not a plain URL path (no spaces, \"?\" or \"#\")"
            ));
        }
        Ok(UrlPath(s.to_owned()))
    }
}

impl fmt::Display for UrlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Leaf for SocketAddr {
    fn from_node(node: &Node) -> Result<Self, String> {
        let s = text(node)?;
        s.parse().map_err(|_| {
            format!("invalid address {s:?} (expected IP:PORT, e.g. \"127.0.0.1:8080\")")
        })
    }
}

impl Leaf for PathBuf {
    fn from_node(node: &Node) -> Result<Self, String> {
        match text(node)? {
            "" => Err("must not be empty".to_owned()),
            s => Ok(PathBuf::from(s)),
        }
    }
}

impl Leaf for HeaderName {
    fn from_node(node: &Node) -> Result<Self, String> {
        let s = text(node)?;
        HeaderName::from_bytes(s.as_bytes()).map_err(|_| format!("invalid HTTP header name {s:?}"))
    }
}

impl Leaf for Preset {
    fn from_node(node: &Node) -> Result<Self, String> {
        text(node)?.parse::<Preset>().map_err(|e| e.reason)
    }
}

/// A closed set of names, read from a string.
macro_rules! name_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The name used in config files.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Leaf for $name {
            fn from_node(node: &Node) -> Result<Self, String> {
                let s = text(node)?;
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown value {s:?} (expected one of: {})",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

name_enum! {
    /// What a route asks of the caller's identity.
    AuthMode {
        /// A valid token or API key is required (401 otherwise).
        Required = "required",
        /// Identity is checked and forwarded when present.
        Optional = "optional",
        /// No identity check.
        None = "none",
    }
}

name_enum! {
    /// How the password-hashing threads are scheduled (`[auth] password_hash_priority`).
    PasswordHashPriority {
        /// Only on cores nothing else wants (Linux `SCHED_IDLE`).
        Idle = "idle",
        /// Niceness 10: a share of a busy core.
        Low = "low",
    }
}

name_enum! {
    /// What a route's rate limit counts by.
    RateLimitKey {
        /// The authenticated user.
        User = "user",
        /// The API key used.
        ApiKey = "api_key",
        /// The client's IP address.
        Ip = "ip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_display() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn urls_check_the_scheme_and_hide_passwords() {
        assert!(Url::parse("http://127.0.0.1:9002", Schemes::Http).is_ok());
        assert!(
            Url::parse("ftp://x", Schemes::Http)
                .unwrap_err()
                .contains("unsupported URL scheme")
        );
        assert!(Url::parse("127.0.0.1:9002", Schemes::Http).is_err());
        let db = Url::parse("postgres://app:s3cret@db:5432/portico", Schemes::Database).unwrap();
        assert_eq!(db.to_string(), "postgres://app:***@db:5432/portico");
        assert!(!format!("{db:?}").contains("s3cret"));
        assert!(Url::parse("sqlite:./data/portico.db", Schemes::Database).is_ok());
        let err = Url::parse("mysql://u:pw@h/db", Schemes::Database).unwrap_err();
        assert!(!err.contains("pw@"), "{err}");
    }
}
