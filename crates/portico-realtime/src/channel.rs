//! Channel names: `user:<id>` (a user's personal channel) or `<namespace>:<rest>` (a channel
//! of a configured namespace), checked once when a client or upstream names one.

use std::fmt;

/// The longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// A checked channel name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelName {
    /// `user:<id>`: the personal channel of user `<id>`.
    User(String),
    /// `<namespace>:<rest>`.
    Namespaced {
        /// The namespace (before the first `:`).
        namespace: String,
        /// The whole name.
        full: String,
    },
}

/// Why a string is not a channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Empty, or longer than [`MAX_CHANNEL_LEN`].
    #[error("a channel name has 1 to {MAX_CHANNEL_LEN} bytes")]
    Length,
    /// Whitespace or a control character.
    #[error("a channel name cannot contain whitespace or control characters")]
    Character,
    /// No `:` separating a namespace from the rest, or an empty part.
    #[error("a channel name is \"<namespace>:<name>\" (e.g. \"session:42\" or \"user:<id>\")")]
    Shape,
}

impl ChannelName {
    /// Parses `name`.
    pub fn parse(name: &str) -> Result<Self, ChannelError> {
        if name.is_empty() || name.len() > MAX_CHANNEL_LEN {
            return Err(ChannelError::Length);
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ChannelError::Character);
        }
        let (namespace, rest) = name.split_once(':').ok_or(ChannelError::Shape)?;
        if namespace.is_empty() || rest.is_empty() {
            return Err(ChannelError::Shape);
        }
        if namespace == "user" {
            return Ok(ChannelName::User(rest.to_owned()));
        }
        Ok(ChannelName::Namespaced {
            namespace: namespace.to_owned(),
            full: name.to_owned(),
        })
    }

    /// The personal channel of `user_id`.
    pub fn personal(user_id: &str) -> String {
        format!("user:{user_id}")
    }

    /// The whole name.
    pub fn as_str(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelName::User(id) => write!(f, "user:{id}"),
            ChannelName::Namespaced { full, .. } => f.write_str(full),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_and_namespaced_channels_parse() {
        assert_eq!(
            ChannelName::parse("user:42").unwrap(),
            ChannelName::User("42".into())
        );
        let ch = ChannelName::parse("session:abc:1").unwrap();
        assert_eq!(ch.to_string(), "session:abc:1");
        assert!(
            matches!(ch, ChannelName::Namespaced { ref namespace, .. } if namespace == "session")
        );
    }

    #[test]
    fn malformed_names_are_refused() {
        assert_eq!(ChannelName::parse(""), Err(ChannelError::Length));
        assert_eq!(ChannelName::parse("lobby"), Err(ChannelError::Shape));
        assert_eq!(ChannelName::parse(":x"), Err(ChannelError::Shape));
        assert_eq!(ChannelName::parse("user:"), Err(ChannelError::Shape));
        assert_eq!(ChannelName::parse("a b:c"), Err(ChannelError::Character));
        assert_eq!(
            ChannelName::parse(&format!("ns:{}", "x".repeat(300))),
            Err(ChannelError::Length)
        );
    }
}
