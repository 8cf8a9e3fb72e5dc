//! WebSocket through the gateway: the HTTP/1.1 upgrade handshake is proxied like any request
//! (identity, permissions, headers, breaker, timeout), with its `Connection: upgrade` and
//! `Upgrade: websocket` kept. When the upstream answers `101 Switching Protocols`, the client
//! gets the 101 and, once both connections have switched, the bytes are copied both ways until
//! either side closes. Frames are not parsed: the upstream and the client speak WebSocket to
//! each other. Any other answer is passed through as it is.
//!
//! WebSocket over HTTP/2 (RFC 8441 extended CONNECT) is not proxied.

use axum::body::Body;
use axum::response::Response;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Method, Request, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::respond::pass_through;

/// The `Upgrade` value of a WebSocket handshake, `None` if `request` is not one.
pub(crate) fn requested(request: &Request<Body>) -> Option<HeaderValue> {
    if request.method() != Method::GET || request.version() != Version::HTTP_11 {
        return None;
    }
    // `Upgrade` first: most requests have none, and one lookup answers for them.
    let upgrade = request.headers().get(UPGRADE)?;
    let connection_upgrade = request
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = upgrade
        .to_str()
        .ok()?
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
    (connection_upgrade && websocket).then(|| upgrade.clone())
}

/// Answers the client with the upstream's 101 and joins the two connections once both have
/// switched protocols.
pub(crate) fn tunnel(
    mut upstream_response: http::Response<Incoming>,
    client: OnUpgrade,
    upstream_name: &str,
) -> Response {
    let upstream = hyper::upgrade::on(&mut upstream_response);
    let name = upstream_name.to_owned();
    let copy = async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(upstream = %name, %error, "[{name}] WebSocket upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((sent, received)) => tracing::debug!(
                upstream = %name,
                sent,
                received,
                "[{name}] WebSocket closed"
            ),
            Err(error) => {
                tracing::debug!(upstream = %name, %error, "[{name}] WebSocket ended with an error");
            }
        }
    };
    tokio::spawn(copy.instrument(tracing::Span::current()));
    pass_through(upstream_response)
}
