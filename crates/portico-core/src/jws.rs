//! Ed25519-signed compact JWS (RFC 7515, `alg: EdDSA` of RFC 8037): the pieces auth's access
//! tokens and the gateway's `X-Portico-Identity` share — the RFC 7638 key id, the public
//! JWK, and the compact serialization. The private key stays with the caller, which signs
//! through a closure, so this module needs no cryptography of its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 of the JWK's required members
/// in lexicographic order, base64url. Used as the `kid`.
pub fn ed25519_thumbprint(public_key: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public_key)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public JWK of an Ed25519 key as a JWKS lists it:
/// `{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}`.
pub fn ed25519_jwk(public_key: &[u8; 32], kid: &str) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(public_key),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// `claims` as a compact JWS with header `{"typ":"JWT","alg":"EdDSA","kid":…}`, the
/// signature over `header.claims` made by `sign` (an Ed25519 signature). Fails only when
/// `claims` does not serialize.
pub fn sign_eddsa<C: Serialize + ?Sized>(
    kid: &str,
    claims: &C,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Header<'a> {
        typ: &'static str,
        alg: &'static str,
        kid: &'a str,
    }
    let header = serde_json::to_vec(&Header {
        typ: "JWT",
        alg: "EdDSA",
        kid,
    })?;
    let claims = serde_json::to_vec(claims)?;

    let mut token = String::with_capacity((header.len() + claims.len() + 64) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
    let signature = sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_rfc_8037_appendix_a3() {
        let x: [u8; 32] = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            ed25519_thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let jwk = ed25519_jwk(&x, "k");
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kty"], "OKP");
    }

    #[test]
    fn compact_form_has_the_header_and_signs_its_first_two_parts() {
        let mut signed = Vec::new();
        let token = sign_eddsa("kid-1", &json!({"sub": "u1"}), |m| {
            signed = m.to_vec();
            [7u8; 64]
        })
        .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(signed, format!("{}.{}", parts[0], parts[1]).as_bytes());
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"typ": "JWT", "alg": "EdDSA", "kid": "kid-1"})
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), [7u8; 64]);
    }
}
