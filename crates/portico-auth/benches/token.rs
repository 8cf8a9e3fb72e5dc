//! Access-token hot paths: verification (what `/auth/validate` and the gateway do per
//! request), signing (per login/refresh), and for reference the bare Ed25519 check and the
//! cheapest refusal.
//!
//! Run with: `cargo bench -p portico-auth --bench token -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::Verifier as _;
use portico_auth::keys::{KeySet, SigningKey};
use portico_auth::token::{AccessClaims, TokenIssuer, TokenType, TokenVerifier, sign};

fn token_benches(c: &mut Criterion) {
    let now = SystemTime::now();
    let keys = KeySet::new(SigningKey::generate().expect("key"));
    let issuer = TokenIssuer::new("https://auth.bench", Duration::from_secs(900));
    let claims = AccessClaims {
        email: Some("ada@example.com".into()),
        permissions: vec!["threads:read".into(), "threads:write".into()],
        roles: vec!["user".into()],
        sid: Some("0123456789abcdef0123456789abcdef".into()),
        ..issuer.claims(
            "0123456789abcdef0123456789abcdef",
            TokenType::User,
            vec!["portico".into()],
            now,
        )
    };
    let token = sign(&keys, &claims).expect("sign");
    let verifier = TokenVerifier::new("https://auth.bench", ["portico"]);
    assert!(verifier.verify(&keys, &token, now).is_ok());

    let mut group = c.benchmark_group("token");
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(&keys, black_box(&token), now))
    });
    group.bench_function("sign", |b| b.iter(|| sign(&keys, black_box(&claims))));

    // The floor under `verify`: one Ed25519 check with an already-decoded key.
    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let signature =
        ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).expect("base64"))
            .expect("64 bytes");
    let public = ed25519_dalek::VerifyingKey::from_bytes(keys.signer().public_key()).expect("key");
    group.bench_function("ed25519_verify_only", |b| {
        b.iter(|| public.verify(black_box(message.as_bytes()), &signature))
    });

    // Refused from the header alone (no signature check): what forged tokens cost.
    let stranger = KeySet::new(SigningKey::generate().expect("key"));
    group.bench_function("reject_unknown_kid", |b| {
        b.iter(|| verifier.verify(&stranger, black_box(&token), now))
    });
    group.finish();
}

criterion_group!(benches, token_benches);
criterion_main!(benches);
