//! Seeds 003/004's collaboration service (Vaporform's sessions, CodeMentor's pair
//! programming): shared code sessions whose members hold a role, `viewer < collaborator <
//! owner` (seed 003's `checkProjectAccess`). Portico checks who the caller is; this service,
//! which owns the sessions, checks what their role lets them do.
//!
//! - REST, through the gateway: `POST /api/sessions {name?, code?, open?}` (the caller
//!   owns it; `open` = the role anyone joining gets, else members are invited),
//!   `GET /api/sessions`, `GET /api/sessions/{id}`, `PUT /api/sessions/{id}/join`,
//!   `DELETE /api/sessions/{id}/leave`, `PUT|DELETE /api/sessions/{id}/members/{user_id}
//!   {role}` (owner only), and `GET /api/sessions/{id}/context?user_id=U` for *services*
//!   only (a client-credentials token: seed 003's AI service asking the projects service).
//! - WebSocket actions, routed by the hub: `join-session {session_id}` answers the state
//!   sync; `code-change {session_id, code}` (collaborator or owner) and `cursor-update
//!   {session_id, position}` go to the channel `session:<id>`, to everyone but the sender's
//!   connection; `POST /api/collab/check` decides who may subscribe to that channel.
//!
//! The caller is the `X-Portico-Identity` Portico signs ([`Verifier::jwks`], audience
//! [`UPSTREAM`]), so the service also sees whether a user, an API key or a service calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use portico_core::error::{ApiError, ApiJson, ErrorCode};
use portico_core::request_id::RequestId;
use portico_sdk::{Caller, Target, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::DemoSettings;

/// The port `portico demo collab` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9003;
/// The upstream name this service must have in Portico's config: the `aud` of the
/// `X-Portico-Identity` it accepts.
pub const UPSTREAM: &str = "collab";
/// The realtime namespace of the sessions' channels (`session:<id>`).
const NAMESPACE: &str = "session";
/// The header the hub names the calling connection in.
const CONNECTION_HEADER: &str = "x-portico-connection-id";

/// A member's role in a session, in rising order of what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the code and the cursors, moves their own cursor.
    Viewer,
    /// Also changes the code.
    Collaborator,
    /// Also invites, changes roles and removes members.
    Owner,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Collaborator => "collaborator",
            Role::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    name: String,
    code: String,
    version: u64,
    /// The role anyone who joins gets; `None`: members are invited by the owner.
    open: Option<Role>,
    members: BTreeMap<String, Role>,
    cursors: BTreeMap<String, Value>,
}

impl Session {
    fn channel(&self) -> String {
        format!("{NAMESPACE}:{}", self.id)
    }

    /// The whole state, as a member with `role` sees it (the state sync of a join).
    fn state(&self, role: Role) -> Value {
        json!({
            "session_id": self.id,
            "name": self.name,
            "channel": self.channel(),
            "role": role,
            "open": self.open,
            "code": self.code,
            "version": self.version,
            "members": self.members.iter()
                .map(|(user_id, role)| json!({"user_id": user_id, "role": role}))
                .collect::<Vec<_>>(),
            "cursors": self.cursors,
        })
    }

    /// The caller's role, or 403 `AUTH_006` when it is below `needed`.
    fn require(&self, caller: &Caller, needed: Role) -> Result<Role, ApiError> {
        match self.members.get(&caller.user_id) {
            Some(&role) if role >= needed => Ok(role),
            Some(role) => Err(ApiError::new(
                ErrorCode::Auth006,
                format!(
                    "this needs the {} role in the session; you are {}",
                    needed.name(),
                    role.name()
                ),
            )),
            None => Err(ApiError::new(
                ErrorCode::Auth006,
                "you are not a member of this session",
            )),
        }
    }
}

#[derive(Clone)]
struct Collab {
    settings: DemoSettings,
    verifier: Verifier,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

/// The service's routes.
pub fn router(settings: DemoSettings) -> Result<Router, String> {
    let verifier = Verifier::jwks(&settings.portico, UPSTREAM).map_err(|e| e.to_string())?;
    let collab = Collab {
        settings,
        verifier,
        sessions: Arc::default(),
    };
    Ok(Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/api/sessions", post(create).get(list))
        .route("/api/sessions/{id}", get(show))
        .route("/api/sessions/{id}/join", put(join_rest))
        .route("/api/sessions/{id}/leave", axum::routing::delete(leave))
        .route(
            "/api/sessions/{id}/members/{user_id}",
            put(set_member).delete(remove_member),
        )
        .route("/api/sessions/{id}/context", get(context))
        .route("/api/collab/join", post(join_action))
        .route("/api/collab/code-change", post(code_change))
        .route("/api/collab/cursor-update", post(cursor_update))
        .route("/api/collab/check", post(check))
        .with_state(collab))
}

impl Collab {
    /// The caller Portico vouches for; services are refused where a user is needed.
    async fn user(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let caller = self.verifier.caller(headers).await?;
        if caller.token_type.as_deref() == Some("service") {
            return Err(ApiError::new(
                ErrorCode::Auth006,
                "sessions belong to users: a service token cannot act here",
            ));
        }
        Ok(caller)
    }

    /// Runs `f` on session `id` (404 `BACKEND_002` when there is none).
    fn with_session<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Session) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions
            .get_mut(id)
            .ok_or_else(|| ApiError::new(ErrorCode::Backend002, format!("no session {id:?}")))?;
        f(session)
    }

    /// Publishes `event` to the session's channel, to everyone but `except` (the sender's
    /// connection) when the hub named it.
    async fn broadcast(&self, session_id: &str, event: &str, data: Value, except: Option<&str>) {
        let Some(publisher) = &self.settings.publisher else {
            return;
        };
        let channel = format!("{NAMESPACE}:{session_id}");
        let metadata = Some(json!({"session_id": session_id}));
        let sent = match except {
            Some(connection) => {
                publisher
                    .publish_except(Target::Channel(&channel), event, data, metadata, connection)
                    .await
            }
            None => {
                publisher
                    .publish(Target::Channel(&channel), event, data, metadata)
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(session = %session_id, %event, "not published: {e}");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    open: Option<Role>,
}

async fn create(
    State(collab): State<Collab>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Create>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = collab.user(&headers).await?;
    if body.open == Some(Role::Owner) {
        return Err(invalid(
            "open",
            "viewer or collaborator: a session has one owner",
        ));
    }
    let id = RequestId::generate().to_string();
    let session = Session {
        name: body.name.unwrap_or_else(|| format!("session {}", &id[..8])),
        code: body.code.unwrap_or_default(),
        version: 0,
        open: body.open,
        members: BTreeMap::from([(caller.user_id.clone(), Role::Owner)]),
        cursors: BTreeMap::new(),
        id: id.clone(),
    };
    let state = session.state(Role::Owner);
    collab
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), session);
    tracing::info!(session = %id, owner = %caller.user_id, "session created");
    Ok((StatusCode::CREATED, Json(state)))
}

async fn list(State(collab): State<Collab>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    let sessions = collab
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut mine: Vec<Value> = sessions
        .values()
        .filter_map(|s| {
            s.members.get(&caller.user_id).map(
                |role| json!({"session_id": s.id, "name": s.name, "role": role, "channel": s.channel()}),
            )
        })
        .collect();
    mine.sort_by(|a, b| a["session_id"].as_str().cmp(&b["session_id"].as_str()));
    Ok(Json(json!({"sessions": mine})))
}

async fn show(
    State(collab): State<Collab>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    collab.with_session(&id, |s| {
        let role = s.require(&caller, Role::Viewer)?;
        Ok(Json(s.state(role)))
    })
}

/// Joins `id` as `caller`: a member keeps their role; in an open session a newcomer gets
/// its open role; anyone else is refused. Returns the state sync.
fn join(collab: &Collab, id: &str, caller: &Caller) -> Result<Value, ApiError> {
    collab.with_session(id, |s| {
        let role = match (s.members.get(&caller.user_id), s.open) {
            (Some(&role), _) => role,
            (None, Some(open)) => {
                s.members.insert(caller.user_id.clone(), open);
                tracing::info!(session = %s.id, user = %caller.user_id, role = open.name(), "joined");
                open
            }
            (None, None) => {
                return Err(ApiError::new(
                    ErrorCode::Auth006,
                    "this session is by invitation: ask its owner for a role",
                ));
            }
        };
        Ok(s.state(role))
    })
}

async fn join_rest(
    State(collab): State<Collab>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    join(&collab, &id, &caller).map(Json)
}

async fn leave(
    State(collab): State<Collab>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = collab.user(&headers).await?;
    collab.with_session(&id, |s| {
        if s.require(&caller, Role::Viewer)? == Role::Owner {
            return Err(ApiError::bad_request(
                "the owner cannot leave their session",
            ));
        }
        s.members.remove(&caller.user_id);
        s.cursors.remove(&caller.user_id);
        Ok(StatusCode::NO_CONTENT)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    role: Role,
}

async fn set_member(
    State(collab): State<Collab>,
    Path((id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(Member { role }): ApiJson<Member>,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    collab.with_session(&id, |s| {
        s.require(&caller, Role::Owner)?;
        if role == Role::Owner || user_id == caller.user_id {
            return Err(invalid(
                "role",
                "viewer or collaborator, for another user: a session keeps its one owner",
            ));
        }
        s.members.insert(user_id.clone(), role);
        tracing::info!(session = %s.id, user = %user_id, role = role.name(), "role set");
        Ok(Json(
            json!({"session_id": s.id, "user_id": user_id, "role": role}),
        ))
    })
}

async fn remove_member(
    State(collab): State<Collab>,
    Path((id, user_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = collab.user(&headers).await?;
    collab.with_session(&id, |s| {
        s.require(&caller, Role::Owner)?;
        if user_id == caller.user_id {
            return Err(ApiError::bad_request("the owner cannot remove themselves"));
        }
        s.members.remove(&user_id);
        s.cursors.remove(&user_id);
        Ok(StatusCode::NO_CONTENT)
    })
}

#[derive(Deserialize)]
struct ContextQuery {
    user_id: String,
}

/// For services only: a session's code and the role `user_id` holds in it (seed 003's AI
/// service validating project access before it generates code).
async fn context(
    State(collab): State<Collab>,
    Path(id): Path<String>,
    Query(ContextQuery { user_id }): Query<ContextQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.verifier.caller(&headers).await?;
    if caller.token_type.as_deref() != Some("service") {
        return Err(ApiError::new(
            ErrorCode::Auth006,
            "only services (a client-credentials token) read a session's context",
        ));
    }
    collab.with_session(&id, |s| {
        Ok(Json(json!({
            "session_id": s.id,
            "code": s.code,
            "version": s.version,
            "user_id": user_id,
            "role": s.members.get(&user_id),
            "service": caller.user_id,
        })))
    })
}

#[derive(Deserialize)]
struct SessionRef {
    #[serde(alias = "sessionId")]
    session_id: String,
}

async fn join_action(
    State(collab): State<Collab>,
    headers: HeaderMap,
    ApiJson(SessionRef { session_id }): ApiJson<SessionRef>,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    join(&collab, &session_id, &caller).map(Json)
}

#[derive(Deserialize)]
struct CodeChange {
    #[serde(alias = "sessionId")]
    session_id: String,
    code: String,
}

async fn code_change(
    State(collab): State<Collab>,
    headers: HeaderMap,
    ApiJson(change): ApiJson<CodeChange>,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    let version = collab.with_session(&change.session_id, |s| {
        s.require(&caller, Role::Collaborator)?;
        s.code.clone_from(&change.code);
        s.version += 1;
        Ok(s.version)
    })?;
    let data = json!({"session_id": change.session_id, "code": change.code,
                      "version": version, "user_id": caller.user_id});
    collab
        .broadcast(
            &change.session_id,
            "code-change",
            data,
            connection(&headers),
        )
        .await;
    Ok(Json(
        json!({"session_id": change.session_id, "version": version}),
    ))
}

#[derive(Deserialize)]
struct CursorUpdate {
    #[serde(alias = "sessionId")]
    session_id: String,
    position: Value,
}

async fn cursor_update(
    State(collab): State<Collab>,
    headers: HeaderMap,
    ApiJson(update): ApiJson<CursorUpdate>,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    collab.with_session(&update.session_id, |s| {
        s.require(&caller, Role::Viewer)?;
        s.cursors
            .insert(caller.user_id.clone(), update.position.clone());
        Ok(())
    })?;
    let data = json!({"session_id": update.session_id, "position": update.position,
                      "user_id": caller.user_id});
    collab
        .broadcast(
            &update.session_id,
            "cursor-update",
            data,
            connection(&headers),
        )
        .await;
    Ok(Json(json!({"session_id": update.session_id})))
}

#[derive(Deserialize)]
struct Check {
    channel: String,
}

/// The hub's join check for `session:<id>`: members only (any role).
async fn check(
    State(collab): State<Collab>,
    headers: HeaderMap,
    ApiJson(Check { channel }): ApiJson<Check>,
) -> Result<Json<Value>, ApiError> {
    let caller = collab.user(&headers).await?;
    let id = channel
        .strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(|| ApiError::bad_request(format!("not a {NAMESPACE}:<id> channel")))?;
    collab.with_session(id, |s| {
        let role = s.require(&caller, Role::Viewer)?;
        Ok(Json(json!({"role": role})))
    })
}

/// 422 `REQ_001` naming `field`.
fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::invalid_fields(
        StatusCode::UNPROCESSABLE_ENTITY,
        [(field.to_owned(), problem.to_owned())],
    )
}

/// The connection a routed action came from.
fn connection(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONNECTION_HEADER).and_then(|v| v.to_str().ok())
}
