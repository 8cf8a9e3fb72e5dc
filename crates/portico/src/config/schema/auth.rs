//! `[auth]`, its providers and service clients, and `[roles.*]`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::problem::Problems;
use crate::config::reader::{Positive, Section, list, text};
use crate::config::types::{HttpUrl, PasswordHashPriority, Schemes, Secret, Url, optional_url};

/// `[auth]`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `issuer` (default `http://127.0.0.1:8080`): the `iss` of every token.
    pub issuer: Url,
    /// `url` (default empty): where gateway/realtime reach auth when it runs apart.
    pub url: Option<Url>,
    /// `access_token_ttl` (default `15m`).
    pub access_token_ttl: Duration,
    /// `refresh_token_ttl` (default `30d`).
    pub refresh_token_ttl: Duration,
    /// `redirect_allowlist` (default `["http://127.0.0.1:8080/"]`): allowed OAuth `redirect_uri`s.
    pub redirect_allowlist: Vec<Url>,
    /// `default_role` (default `user`): the role of new accounts; must be a defined role.
    pub default_role: String,
    /// `password_hash_priority` (default `idle`): how the hashing threads are scheduled.
    pub password_hash_priority: PasswordHashPriority,
    /// `[auth.providers.<name>]`: OAuth2/OIDC providers by name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[[auth.clients]]`: service (client-credentials) clients.
    pub clients: Vec<ClientConfig>,
}

/// `[auth.providers.<name>]`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// `client_id` (required).
    pub client_id: String,
    /// `client_secret` (required).
    pub client_secret: Secret,
    /// Where the provider's endpoints are: from `issuer`, the explicit URLs, or the preset.
    pub endpoints: ProviderEndpoints,
}

/// How a provider's endpoints are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEndpoints {
    /// OIDC discovery at `<issuer>/.well-known/openid-configuration`.
    Discovery {
        /// The provider's issuer.
        issuer: Url,
    },
    /// Plain OAuth2 (GitHub style) with explicit endpoints.
    Explicit {
        /// The authorization endpoint.
        authorize_url: Url,
        /// The token endpoint.
        token_url: Url,
        /// The user-info endpoint.
        userinfo_url: Url,
    },
}

/// The provider presets: `google` (OIDC) and `github` (plain OAuth2).
fn preset_endpoints(name: &str) -> Option<ProviderEndpoints> {
    let url = |s: &str| Url::parse(s, Schemes::Http).ok();
    match name {
        "google" => Some(ProviderEndpoints::Discovery {
            issuer: url("https://accounts.google.com")?,
        }),
        "github" => Some(ProviderEndpoints::Explicit {
            authorize_url: url("https://github.com/login/oauth/authorize")?,
            token_url: url("https://github.com/login/oauth/access_token")?,
            userinfo_url: url("https://api.github.com/user")?,
        }),
        _ => None,
    }
}

/// `[[auth.clients]]`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `id` (required, unique).
    pub id: String,
    /// `secret` (required).
    pub secret: Secret,
    /// `audiences` (default `[]`): the services its tokens are good for.
    pub audiences: Vec<String>,
}

/// `[roles.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleConfig {
    /// `permissions` (default `[]`); `"*"` grants everything.
    pub permissions: Vec<String>,
}

/// Reads `[roles.*]` over the built-in `user` (no permissions) and `admin` (`*`) roles; a role
/// of the same name in the file replaces the built-in one.
pub(crate) fn read_roles(
    top: &mut Section<'_>,
    problems: &mut Problems,
) -> BTreeMap<String, RoleConfig> {
    let mut roles = BTreeMap::from([
        (
            "user".to_owned(),
            RoleConfig {
                permissions: Vec::new(),
            },
        ),
        (
            "admin".to_owned(),
            RoleConfig {
                permissions: vec!["*".to_owned()],
            },
        ),
    ]);
    for (name, mut s) in top.named_sections("roles", problems) {
        let permissions = s.or("permissions", Vec::new(), problems);
        s.finish(problems);
        roles.insert(name.to_owned(), RoleConfig { permissions });
    }
    roles
}

impl AuthConfig {
    pub(crate) fn read(
        mut s: Section<'_>,
        roles: &BTreeSet<&str>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let issuer = s
            .get::<HttpUrl>("issuer", problems)
            .map(|u| u.0)
            .or_else(|| Url::parse("http://127.0.0.1:8080", Schemes::Http).ok());
        let url = s
            .parse_with("url", problems, |n| optional_url(n, Schemes::Http))
            .flatten();
        let access_token_ttl = s
            .or(
                "access_token_ttl",
                Positive(Duration::from_secs(15 * 60)),
                problems,
            )
            .0;
        let refresh_token_ttl = s
            .or(
                "refresh_token_ttl",
                Positive(Duration::from_secs(30 * 24 * 3600)),
                problems,
            )
            .0;
        let redirect_allowlist = s
            .parse_with("redirect_allowlist", problems, |n| {
                list(n, |item| Url::parse(text(item)?, Schemes::Http))
            })
            .or_else(|| {
                Url::parse("http://127.0.0.1:8080/", Schemes::Http)
                    .ok()
                    .map(|u| vec![u])
            })
            .unwrap_or_default();
        let default_role = s
            .parse_with("default_role", problems, |n| {
                let role = text(n)?;
                if roles.contains(role) {
                    Ok(role.to_owned())
                } else {
                    Err(format!(
                        "role {role:?} is not defined (defined: {})",
                        roles.iter().copied().collect::<Vec<_>>().join(", ")
                    ))
                }
            })
            .unwrap_or_else(|| "user".to_owned());
        let password_hash_priority = s.or(
            "password_hash_priority",
            PasswordHashPriority::Idle,
            problems,
        );
        let providers = s
            .named_sections("providers", problems)
            .into_iter()
            .filter_map(|(name, p)| {
                Some((name.to_owned(), ProviderConfig::read(name, p, problems)?))
            })
            .collect();
        let clients = read_clients(&mut s, problems);
        s.finish(problems);
        Some(Self {
            issuer: issuer?,
            url,
            access_token_ttl,
            refresh_token_ttl,
            redirect_allowlist,
            default_role,
            password_hash_priority,
            providers,
            clients,
        })
    }
}

impl ProviderConfig {
    fn read(name: &str, mut s: Section<'_>, problems: &mut Problems) -> Option<Self> {
        let client_id = s.required_with("client_id", problems, |n| match text(n)? {
            "" => Err("must not be empty".to_owned()),
            id => Ok(id.to_owned()),
        });
        let client_secret = s.required::<Secret>("client_secret", problems);
        let issuer = s.get::<HttpUrl>("issuer", problems).map(|u| u.0);
        let present = ["authorize_url", "token_url", "userinfo_url"].map(|k| s.node(k).is_some());
        let authorize_url = s.get::<HttpUrl>("authorize_url", problems).map(|u| u.0);
        let token_url = s.get::<HttpUrl>("token_url", problems).map(|u| u.0);
        let userinfo_url = s.get::<HttpUrl>("userinfo_url", problems).map(|u| u.0);
        let origin = s.origin();
        let path = s.path().to_owned();
        s.finish(problems);

        let endpoints = match (issuer, present.iter().any(|p| *p)) {
            (Some(_), true) => {
                problems.at(
                    origin,
                    &path,
                    "set either issuer (OIDC discovery) or authorize_url/token_url/userinfo_url, not both",
                );
                None
            }
            (Some(issuer), false) => Some(ProviderEndpoints::Discovery { issuer }),
            (None, true) => {
                for (key, present) in ["authorize_url", "token_url", "userinfo_url"]
                    .iter()
                    .zip(present)
                {
                    if !present {
                        problems.at(
                            origin,
                            &format!("{path}.{key}"),
                            "missing (required with explicit endpoints)",
                        );
                    }
                }
                Some(ProviderEndpoints::Explicit {
                    authorize_url: authorize_url?,
                    token_url: token_url?,
                    userinfo_url: userinfo_url?,
                })
            }
            (None, false) => {
                let preset = preset_endpoints(name);
                if preset.is_none() {
                    problems.at(
                        origin,
                        &path,
                        "needs issuer (OIDC discovery) or authorize_url, token_url and userinfo_url \
                         (only the presets google and github know their endpoints)",
                    );
                }
                preset
            }
        };
        Some(Self {
            client_id: client_id?,
            client_secret: client_secret?,
            endpoints: endpoints?,
        })
    }
}

fn read_clients(auth: &mut Section<'_>, problems: &mut Problems) -> Vec<ClientConfig> {
    let mut seen = BTreeSet::new();
    let mut clients = Vec::new();
    for mut s in auth.array_sections("clients", problems) {
        let id = s.required_with("id", problems, |n| match text(n)? {
            "" => Err("must not be empty".to_owned()),
            id if seen.contains(id) => Err(format!("duplicate client id {id:?}")),
            id => Ok(id.to_owned()),
        });
        if let Some(id) = &id {
            seen.insert(id.clone());
        }
        let secret = s.required::<Secret>("secret", problems);
        let audiences = s.or("audiences", Vec::new(), problems);
        s.finish(problems);
        if let (Some(id), Some(secret)) = (id, secret) {
            clients.push(ClientConfig {
                id,
                secret,
                audiences,
            });
        }
    }
    clients
}
