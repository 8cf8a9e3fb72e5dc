//! Access tokens through the public API: signing, verification, every attack refused with
//! the right error, key rotation, and the JWKS.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use portico_auth::keys::{KeyRecord, KeySet, PUBLISH_GRACE, SigningKey, rotate};
use portico_auth::token::{
    AccessClaims, InvalidReason, TokenError, TokenIssuer, TokenType, TokenVerifier, sign, verify,
};
use portico_core::ErrorCode;
use portico_core::clock::{Clock as _, ManualClock};
use serde_json::{Value, json};

const ISS: &str = "https://auth.test";
const AUD: &str = "portico";
const TTL: Duration = Duration::from_secs(15 * 60);

struct Fixture {
    clock: ManualClock,
    records: Vec<KeyRecord>,
    keys: KeySet,
    issuer: TokenIssuer,
}

impl Fixture {
    fn new() -> Self {
        let clock = ManualClock::new();
        let records = vec![
            SigningKey::generate()
                .unwrap()
                .to_record(clock.system_now()),
        ];
        let keys = KeySet::from_records(&records, clock.system_now()).unwrap();
        Self {
            clock,
            records,
            keys,
            issuer: TokenIssuer::new(ISS, TTL),
        }
    }

    fn now(&self) -> SystemTime {
        self.clock.system_now()
    }

    fn claims(&self) -> AccessClaims {
        AccessClaims {
            email: Some("ada@example.com".into()),
            permissions: vec!["threads:read".into()],
            roles: vec!["user".into()],
            sid: Some("session-1".into()),
            ..self
                .issuer
                .claims("user-1", TokenType::User, vec![AUD.into()], self.now())
        }
    }

    fn token(&self) -> String {
        sign(&self.keys, &self.claims()).unwrap()
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        verify(&self.keys, token, ISS, AUD, self.now())
    }

    /// Rotates now and rebuilds the key set from the updated records.
    fn rotate(&mut self) {
        let rotation = rotate(&self.records, self.now(), TTL).unwrap();
        self.records = rotation.apply(&self.records);
        self.keys = KeySet::from_records(&self.records, self.now()).unwrap();
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn part(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// `key` as `jsonwebtoken` takes it: an independent signer to check ours against.
fn jwt_key(key: &SigningKey) -> EncodingKey {
    EncodingKey::from_ed_der(key.private_key_der())
}

/// A token with the given header and claims and a real Ed25519 signature by `key`, so a
/// refusal can only come from what the header or claims say.
fn signed_by(key: &SigningKey, header: Value, claims: &Value) -> String {
    let message = format!("{}.{}", part(&header), part(claims));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &jwt_key(key), Algorithm::EdDSA).unwrap();
    format!("{message}.{signature}")
}

fn claims_json(f: &Fixture) -> Value {
    serde_json::to_value(f.claims()).unwrap()
}

fn invalid(reason: InvalidReason) -> Result<AccessClaims, TokenError> {
    Err(TokenError::Invalid(reason))
}

// === valid tokens ===

#[test]
fn signed_token_verifies_and_returns_its_claims() {
    let f = Fixture::new();
    let claims = f.claims();
    let token = sign(&f.keys, &claims).unwrap();
    assert_eq!(f.verify(&token), Ok(claims));
}

#[test]
fn header_says_eddsa_with_kid_and_typ_jwt() {
    let f = Fixture::new();
    let header = jsonwebtoken::decode_header(f.token()).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(f.keys.current_kid()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[test]
fn claims_carry_the_documented_names() {
    let f = Fixture::new();
    let token = f.token();
    let payload = token.split('.').nth(1).unwrap();
    let json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for name in [
        "sub",
        "email",
        "permissions",
        "roles",
        "sid",
        "jti",
        "iss",
        "aud",
        "exp",
        "iat",
        "token_type",
    ] {
        assert!(json.get(name).is_some(), "{name} missing from {json}");
    }
    assert_eq!(json["aud"], json!(AUD));
    assert_eq!(json["token_type"], json!("user"));
    assert_eq!(
        json["exp"].as_u64().unwrap() - json["iat"].as_u64().unwrap(),
        900
    );
}

#[test]
fn service_token_with_several_audiences_verifies_for_each() {
    let f = Fixture::new();
    let claims = f.issuer.claims(
        "etl",
        TokenType::Service,
        vec!["etl-api".into(), "reports".into()],
        f.now(),
    );
    let token = sign(&f.keys, &claims).unwrap();
    for aud in ["etl-api", "reports"] {
        let got = verify(&f.keys, &token, ISS, aud, f.now()).unwrap();
        assert_eq!(got.token_type, TokenType::Service);
        assert_eq!(got.email, None);
    }
    let verifier = TokenVerifier::new(ISS, [AUD, "reports"]);
    assert!(verifier.verify(&f.keys, &token, f.now()).is_ok());
}

#[test]
fn token_verifies_with_jsonwebtoken_and_the_published_jwk() {
    // What a gateway holding only the JWKS does.
    let f = Fixture::new();
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(f.keys.jwks()).unwrap();
    let jwk = jwks.find(f.keys.current_kid()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    let data = jsonwebtoken::decode::<AccessClaims>(f.token(), &key, &validation).unwrap();
    assert_eq!(data.claims.sub, "user-1");
    assert!(f.keys.decoding_key(f.keys.current_kid()).is_some());
}

#[test]
fn token_made_by_jsonwebtoken_with_our_key_verifies() {
    let f = Fixture::new();
    let header = jsonwebtoken::Header {
        kid: Some(f.keys.current_kid().to_owned()),
        ..jsonwebtoken::Header::new(Algorithm::EdDSA)
    };
    let claims = f.claims();
    let token = jsonwebtoken::encode(&header, &claims, &jwt_key(f.keys.signer())).unwrap();
    assert_eq!(f.verify(&token), Ok(claims));
}

// === attacks on the header ===

#[test]
fn alg_none_is_rejected() {
    let f = Fixture::new();
    let header = json!({"alg": "none", "typ": "JWT", "kid": f.keys.current_kid()});
    for token in [
        format!("{}.{}.", part(&header), part(&claims_json(&f))),
        format!("{}.{}", part(&header), part(&claims_json(&f))),
    ] {
        let err = f.verify(&token).unwrap_err();
        assert!(
            matches!(
                err,
                TokenError::Invalid(InvalidReason::Algorithm | InvalidReason::Malformed)
            ),
            "{err:?}"
        );
    }
    let token = format!("{}.{}.", part(&header), part(&claims_json(&f)));
    assert_eq!(f.verify(&token), invalid(InvalidReason::Algorithm));
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let f = Fixture::new();
    let public = f.keys.signer().public_key();
    let jwks = f.keys.jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let header = jsonwebtoken::Header {
        kid: Some(f.keys.current_kid().to_owned()),
        ..jsonwebtoken::Header::new(Algorithm::HS256)
    };
    // Every form of the public key an attacker might try as the HMAC secret.
    for secret in [
        public.to_vec(),
        x.into_bytes(),
        jwks["keys"][0].to_string().into_bytes(),
    ] {
        let token =
            jsonwebtoken::encode(&header, &f.claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(f.verify(&token), invalid(InvalidReason::Algorithm));
    }
}

#[test]
fn rs256_and_es256_tokens_are_rejected() {
    let f = Fixture::new();
    for alg in ["RS256", "ES256", "PS256", "HS512", "EdDSA "] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": f.keys.current_kid()});
        let token = format!(
            "{}.{}.{}",
            part(&header),
            part(&claims_json(&f)),
            b64(&[7u8; 64])
        );
        assert_eq!(f.verify(&token), invalid(InvalidReason::Algorithm), "{alg}");
    }
}

#[test]
fn unknown_kid_is_rejected_and_reported() {
    let f = Fixture::new();
    let stranger = SigningKey::generate().unwrap();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": stranger.kid()});
    let token = signed_by(&stranger, header, &claims_json(&f));
    let err = f.verify(&token).unwrap_err();
    assert_eq!(err, TokenError::UnknownKid(stranger.kid().to_owned()));
    assert_eq!(err.code(), ErrorCode::Auth001);
}

#[test]
fn missing_kid_is_rejected() {
    let f = Fixture::new();
    let header = json!({"alg": "EdDSA", "typ": "JWT"});
    let token = signed_by(f.keys.signer(), header, &claims_json(&f));
    assert_eq!(f.verify(&token), invalid(InvalidReason::MissingKid));
}

#[test]
fn foreign_key_under_a_published_kid_is_rejected() {
    let f = Fixture::new();
    let stranger = SigningKey::generate().unwrap();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": f.keys.current_kid()});
    let token = signed_by(&stranger, header, &claims_json(&f));
    assert_eq!(f.verify(&token), invalid(InvalidReason::BadSignature));
}

#[test]
fn critical_header_extension_is_rejected() {
    let f = Fixture::new();
    let header = json!({"alg": "EdDSA", "kid": f.keys.current_kid(), "crit": ["exp"], "exp": 1});
    let token = signed_by(f.keys.signer(), header, &claims_json(&f));
    assert_eq!(f.verify(&token), invalid(InvalidReason::CriticalHeader));
}

#[test]
fn other_typ_is_rejected() {
    let f = Fixture::new();
    let header = json!({"alg": "EdDSA", "typ": "JWE", "kid": f.keys.current_kid()});
    let token = signed_by(f.keys.signer(), header, &claims_json(&f));
    assert_eq!(f.verify(&token), invalid(InvalidReason::Type));
}

#[test]
fn malformed_tokens_are_rejected() {
    let f = Fixture::new();
    let good = f.token();
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let oversized = format!("{h}.{}.{s}", "A".repeat(9000));
    for token in [
        "",
        "not a token",
        "a.b",
        "a.b.c",
        &format!("{h}.{p}"),
        &format!("{h}.{p}.{s}.{s}"),
        &format!("{h}=.{p}.{s}"),
        &format!("{}.{p}.{s}", b64(b"not json")),
        &oversized,
    ] {
        assert_eq!(
            f.verify(token),
            invalid(InvalidReason::Malformed),
            "{token}"
        );
    }
}

// === attacks on claims and signature ===

#[test]
fn tampered_payload_is_rejected() {
    let f = Fixture::new();
    let token = f.token();
    let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut claims = claims_json(&f);
    claims["permissions"] = json!(["*"]);
    let forged = format!("{h}.{}.{s}", part(&claims));
    assert_eq!(f.verify(&forged), invalid(InvalidReason::BadSignature));
}

#[test]
fn tampered_signature_is_rejected() {
    let f = Fixture::new();
    let token = f.token();
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[10] ^= 0x01;
    let forged = format!("{message}.{}", b64(&sig));
    assert_eq!(f.verify(&forged), invalid(InvalidReason::BadSignature));
    let truncated = format!("{message}.{}", b64(&sig[..63]));
    assert!(f.verify(&truncated).is_err());
}

#[test]
fn wrong_issuer_is_rejected() {
    let f = Fixture::new();
    assert_eq!(
        verify(&f.keys, &f.token(), "https://other.test", AUD, f.now()),
        invalid(InvalidReason::Issuer)
    );
}

#[test]
fn wrong_audience_is_rejected() {
    let f = Fixture::new();
    assert_eq!(
        verify(&f.keys, &f.token(), ISS, "billing", f.now()),
        invalid(InvalidReason::Audience)
    );
}

#[test]
fn missing_claims_are_rejected() {
    let f = Fixture::new();
    let mut claims = claims_json(&f);
    claims.as_object_mut().unwrap().remove("exp");
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": f.keys.current_kid()});
    let token = signed_by(f.keys.signer(), header, &claims);
    assert_eq!(f.verify(&token), invalid(InvalidReason::Claims));
}

// === time ===

#[test]
fn expired_token_is_rejected_with_auth_002() {
    let f = Fixture::new();
    let token = f.token();
    f.clock.advance(TTL - Duration::from_secs(1));
    assert!(f.verify(&token).is_ok(), "valid until the last second");
    f.clock.advance(Duration::from_secs(1));
    let err = f.verify(&token).unwrap_err();
    assert_eq!(err, TokenError::Expired);
    assert_eq!(err.code(), ErrorCode::Auth002);
}

#[test]
fn leeway_extends_validity_by_exactly_the_leeway() {
    let f = Fixture::new();
    let token = f.token();
    let verifier = TokenVerifier::new(ISS, [AUD]).with_leeway(Duration::from_secs(30));
    f.clock.advance(TTL + Duration::from_secs(29));
    assert!(verifier.verify(&f.keys, &token, f.now()).is_ok());
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(
        verifier.verify(&f.keys, &token, f.now()),
        Err(TokenError::Expired)
    );
}

#[test]
fn token_issued_in_the_future_is_rejected() {
    let f = Fixture::new();
    let later = f.now() + Duration::from_secs(120);
    let claims = f
        .issuer
        .claims("user-1", TokenType::User, vec![AUD.into()], later);
    let token = sign(&f.keys, &claims).unwrap();
    assert_eq!(f.verify(&token), invalid(InvalidReason::NotYetValid));
    let lenient = TokenVerifier::new(ISS, [AUD]).with_leeway(Duration::from_secs(120));
    assert!(lenient.verify(&f.keys, &token, f.now()).is_ok());
}

#[test]
fn token_before_its_nbf_is_rejected() {
    let f = Fixture::new();
    let mut claims = f.claims();
    claims.nbf = Some(claims.iat + 60);
    let token = sign(&f.keys, &claims).unwrap();
    assert_eq!(f.verify(&token), invalid(InvalidReason::NotYetValid));
    f.clock.advance(Duration::from_secs(60));
    assert!(f.verify(&token).is_ok());
}

// === rotation and the JWKS ===

#[test]
fn previous_key_still_verifies_during_the_overlap() {
    let mut f = Fixture::new();
    let old_kid = f.keys.current_kid().to_owned();
    let old_token = f.token();
    f.clock.advance(Duration::from_secs(60));
    f.rotate();

    assert_ne!(f.keys.current_kid(), old_kid);
    let new_header = jsonwebtoken::decode_header(f.token()).unwrap();
    assert_eq!(new_header.kid.as_deref(), Some(f.keys.current_kid()));
    assert!(f.keys.kids().any(|k| k == old_kid));

    // The old token lives out its life.
    f.clock.advance(TTL - Duration::from_secs(61));
    assert!(f.verify(&old_token).is_ok());
}

#[test]
fn key_no_longer_published_after_rotation_and_expiry_is_rejected() {
    let mut f = Fixture::new();
    let old_kid = f.keys.current_kid().to_owned();
    let old_token = f.token();
    f.rotate();

    // Past the publication window: rebuilt from the records, the old key is gone.
    f.clock.advance(TTL + PUBLISH_GRACE);
    let stale_set = f.keys.clone();
    f.keys = KeySet::from_records(&f.records, f.now()).unwrap();
    assert!(f.keys.kids().all(|k| k != old_kid));
    assert!(f.keys.jwks()["keys"].as_array().unwrap().len() == 1);
    assert_eq!(
        f.verify(&old_token),
        Err(TokenError::UnknownKid(old_kid.clone()))
    );

    // A set built earlier and not yet rebuilt refuses the key all the same.
    assert_eq!(
        verify(&stale_set, &old_token, ISS, AUD, f.now()),
        Err(TokenError::UnknownKid(old_kid))
    );
    assert_eq!(
        stale_set.jwks_at(f.now())["keys"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn retired_key_signature_is_not_accepted_for_new_tokens_beyond_its_window() {
    // A leaked retired key cannot mint tokens that outlive its window.
    let mut f = Fixture::new();
    let old = SigningKey::from_record(&f.records[0]).unwrap();
    f.rotate();
    f.clock.advance(TTL + PUBLISH_GRACE);
    let claims = f
        .issuer
        .claims("mallory", TokenType::User, vec![AUD.into()], f.now());
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": old.kid()});
    let token = signed_by(&old, header, &serde_json::to_value(claims).unwrap());
    assert_eq!(
        f.verify(&token),
        Err(TokenError::UnknownKid(old.kid().to_owned()))
    );
}

#[test]
fn jwks_has_the_rfc_8037_shape_with_current_key_first() {
    let mut f = Fixture::new();
    let old_kid = f.keys.current_kid().to_owned();
    f.rotate();
    let jwks = f.keys.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        let obj = key.as_object().unwrap();
        assert_eq!(obj.len(), 6, "{key}");
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
        assert_eq!(x.len(), 32);
        assert!(!obj.contains_key("d"), "no private part");
    }
    assert_eq!(keys[0]["kid"], f.keys.current_kid());
    assert_eq!(keys[1]["kid"], old_kid.as_str());
}

#[test]
fn key_set_needs_a_current_key() {
    let f = Fixture::new();
    let mut records = f.records.clone();
    records[0].not_after = Some(f.now());
    records[0].expires_at = Some(f.now() + Duration::from_secs(3600));
    assert!(KeySet::from_records(&records, f.now()).is_err());
    assert!(KeySet::from_records(&[], f.now()).is_err());
}
