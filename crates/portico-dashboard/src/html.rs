//! The HTML the pages are made of: one escaping function ([`escape`]) that every piece of
//! text from a user, a token, a config or an upstream goes through, and the page frame
//! ([`page`]) every page shares (viewport, stylesheet, navigation, `<main>`).
//!
//! Why hand-written functions and not a template engine: five small pages, a few hundred
//! lines of markup in all; a `format!` with [`escape`] on every interpolation keeps the
//! markup beside the code that fills it, adds no proc-macro crate to the build, and makes
//! the one rule (escape what you did not write) visible at each use.

use std::fmt::Write as _;

/// `text` with `& < > " '` replaced by entities: safe inside element content and inside
/// double- or single-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Not signed in: no navigation, no sign-out button.
    None,
    /// The status page.
    Status,
    /// The API keys page.
    Keys,
    /// The agent demo page.
    Demo,
}

/// What the frame around a page's content shows.
pub struct Frame<'a> {
    /// The `<title>` and `<h1>`.
    pub title: &'a str,
    /// The current navigation entry.
    pub nav: Nav,
    /// The signed-in user's email (shown beside "Sign out").
    pub email: Option<&'a str>,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: Option<&'a str>,
    /// An access token for the page's script to open `/ws` with (`<meta name="portico-token">`).
    pub ws_token: Option<&'a str>,
    /// A script under `/dashboard/assets/` the page loads (`defer`).
    pub script: Option<&'a str>,
}

/// A whole HTML document: the frame around `content` (already HTML).
pub fn page(frame: &Frame<'_>, content: &str) -> String {
    let mut out = String::with_capacity(content.len() + 2048);
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{} · Portico</title>", escape(frame.title));
    out.push_str("<link rel=\"stylesheet\" href=\"/dashboard/assets/dashboard.css\">\n");
    if let Some(token) = frame.ws_token {
        let _ = writeln!(
            out,
            "<meta name=\"portico-token\" content=\"{}\">",
            escape(token)
        );
        // The WebSocket client the page scripts share.
        out.push_str("<script src=\"/dashboard/assets/live.js\" defer></script>\n");
    }
    if let Some(script) = frame.script {
        let _ = writeln!(
            out,
            "<script src=\"/dashboard/assets/{}\" defer></script>",
            escape(script)
        );
    }
    out.push_str("</head>\n<body>\n<header class=\"top\">\n");
    out.push_str("<a class=\"brand\" href=\"/dashboard/\">Portico</a>\n");
    if frame.nav != Nav::None {
        out.push_str("<nav aria-label=\"Dashboard\"><ul>\n");
        for (nav, href, label) in [
            (Nav::Status, "/dashboard/", "Status"),
            (Nav::Keys, "/dashboard/keys", "API keys"),
            (Nav::Demo, "/dashboard/demo", "Agent demo"),
        ] {
            let current = if nav == frame.nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = writeln!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        out.push_str("</ul></nav>\n");
    }
    if let (Some(email), Some(csrf)) = (frame.email, frame.csrf) {
        let _ = writeln!(
            out,
            "<form class=\"signout\" method=\"post\" action=\"/dashboard/sign-out\">\
             <span class=\"who\">{}</span>{}<button type=\"submit\">Sign out</button></form>",
            escape(email),
            csrf_field(csrf)
        );
    }
    out.push_str("</header>\n<main id=\"main\">\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(frame.title));
    out.push_str(content);
    out.push_str("\n</main>\n</body>\n</html>\n");
    out
}

/// The hidden CSRF field of a state-changing form.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

/// An error message in words, announced to screen readers.
pub fn error_box(message: &str) -> String {
    format!(
        "<p class=\"error\" role=\"alert\" id=\"form-error\">{}</p>\n",
        escape(message)
    )
}

/// A notice (success) in words.
pub fn notice_box(message: &str) -> String {
    format!(
        "<p class=\"notice\" role=\"status\">{}</p>\n",
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_every_markup_character() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn the_frame_escapes_title_email_and_token() {
        let html = page(
            &Frame {
                title: "<b>",
                nav: Nav::Keys,
                email: Some("a\"<x>@example.com"),
                csrf: Some("c\"srf"),
                ws_token: Some("t\"><script>"),
                script: None,
            },
            "",
        );
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("<x>"), "{html}");
        assert!(!html.contains("t\"><script>"), "{html}");
        assert!(html.contains("aria-current=\"page\">API keys"), "{html}");
        assert!(html.contains("name=\"viewport\""));
    }
}
