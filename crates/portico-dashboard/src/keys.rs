//! The API keys page: create a key (its secret is shown once, on the answer to the create
//! form, and never again), list the user's keys (without secrets), delete one. All through
//! the auth service's own API-key functions with the user's access token.

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use portico_auth::api::dto::{ApiKeyCreated, CreateApiKeyRequest};
use serde::Deserialize;

use crate::html::{self, Frame, Nav, escape};
use crate::session::{self, Session};
use crate::{DashboardError, State, see_other};

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

/// `GET /dashboard/keys`.
pub(crate) async fn page(state: State, headers: HeaderMap, query: Query<Done>) -> Response {
    let Some(session) = state.session(&headers).await else {
        return crate::to_sign_in();
    };
    let notice = match query.done.as_deref() {
        Some("deleted") => Some(Notice::Deleted),
        _ => None,
    };
    render(&state, session, StatusCode::OK, notice, "").await
}

/// `POST /dashboard/keys`: creates a key and shows it once.
pub(crate) async fn create(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let Some(session) = state.session(&headers).await else {
        return crate::to_sign_in();
    };
    let form = match crate::form::<CreateForm>(&body) {
        Ok(form) => form,
        Err(e) => return render(&state, session, e.words().0, Some(Notice::Error(e)), "").await,
    };
    if !session::csrf_ok(&headers, &form.csrf) {
        let e = DashboardError::Csrf;
        return render(
            &state,
            session,
            e.words().0,
            Some(Notice::Error(e)),
            &form.name,
        )
        .await;
    }
    if form.name.trim().is_empty() || form.name.trim().chars().count() > 100 {
        let notice = Notice::Words("Give the key a name of 1 to 100 characters.");
        return render(
            &state,
            session,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(notice),
            &form.name,
        )
        .await;
    }
    let request = CreateApiKeyRequest {
        name: form.name.trim().to_owned(),
        permissions: None,
        expires_in: None,
    };
    match state
        .parts
        .auth
        .create_api_key(&session.access, request)
        .await
    {
        Ok(created) => {
            render(
                &state,
                session,
                StatusCode::CREATED,
                Some(Notice::Created(created)),
                "",
            )
            .await
        }
        Err(e) => {
            let e = DashboardError::from(e);
            let status = e.words().0;
            render(&state, session, status, Some(Notice::Error(e)), &form.name).await
        }
    }
}

/// `POST /dashboard/keys/{id}/delete`.
pub(crate) async fn delete(
    state: State,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(session) = state.session(&headers).await else {
        return crate::to_sign_in();
    };
    let csrf = crate::form_csrf(&body);
    if !session::csrf_ok(&headers, &csrf) {
        let e = DashboardError::Csrf;
        return render(&state, session, e.words().0, Some(Notice::Error(e)), "").await;
    }
    match state.parts.auth.delete_api_key(&session.access, &id).await {
        Ok(()) => see_other("/dashboard/keys?done=deleted", session.set_cookies),
        Err(e) => {
            let e = DashboardError::from(e);
            let status = e.words().0;
            render(&state, session, status, Some(Notice::Error(e)), "").await
        }
    }
}

/// What the page says above the form.
enum Notice {
    Created(ApiKeyCreated),
    Deleted,
    Error(DashboardError),
    Words(&'static str),
}

async fn render(
    state: &State,
    session: Session,
    status: StatusCode,
    notice: Option<Notice>,
    name: &str,
) -> Response {
    let mut content = String::new();
    let mut failed = false;
    match notice {
        Some(Notice::Created(created)) => content.push_str(&format!(
            "<section class=\"card created\" aria-labelledby=\"created-heading\">\n\
             <h2 id=\"created-heading\">Key “{}” created</h2>\n\
             <p role=\"status\"><strong>Copy this key now: it is shown only once.</strong> \
             Portico keeps only its hash, so it cannot show it again.</p>\n\
             <label for=\"new-key\">Your new API key</label>\n\
             <input id=\"new-key\" class=\"secret\" type=\"text\" readonly value=\"{}\">\n\
             </section>\n",
            escape(&created.name),
            escape(&created.key)
        )),
        Some(Notice::Deleted) => {
            content.push_str(&html::notice_box("Key deleted. It stops working at once."))
        }
        Some(Notice::Error(e)) => {
            failed = true;
            content.push_str(&html::error_box(&e.words().1));
        }
        Some(Notice::Words(words)) => {
            failed = true;
            content.push_str(&html::error_box(words));
        }
        None => {}
    }
    let described = if failed {
        " aria-describedby=\"form-error\""
    } else {
        ""
    };
    content.push_str(&format!(
        "<form class=\"card\" method=\"post\" action=\"/dashboard/keys\">\n{}\n\
         <label for=\"key-name\">Name of the new key</label>\n\
         <input id=\"key-name\" name=\"name\" type=\"text\" required maxlength=\"100\" \
         value=\"{}\"{described}>\n\
         <button type=\"submit\">Create key</button>\n</form>\n",
        html::csrf_field(&session.csrf),
        escape(name)
    ));
    content.push_str(
        "<section aria-labelledby=\"keys-heading\">\n<h2 id=\"keys-heading\">Your keys</h2>\n",
    );
    match state.parts.auth.list_api_keys(&session.access).await {
        Ok(keys) if keys.is_empty() => {
            content.push_str("<p id=\"no-keys\">You have no API keys.</p>\n");
        }
        Ok(keys) => {
            content.push_str(
                "<div class=\"scroll\"><table id=\"keys\">\n<thead><tr><th scope=\"col\">Name</th>\
                 <th scope=\"col\">Prefix</th><th scope=\"col\">Permissions</th>\
                 <th scope=\"col\">Created</th><th scope=\"col\">Last used</th>\
                 <th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>\
                 </tr></thead>\n<tbody>\n",
            );
            for key in keys {
                let id: String = url::form_urlencoded::byte_serialize(key.id.as_bytes()).collect();
                content.push_str(&format!(
                    "<tr><th scope=\"row\">{name}</th><td><code>{}</code></td><td>{}</td>\
                     <td>{}</td><td>{}</td><td><form method=\"post\" \
                     action=\"/dashboard/keys/{}/delete\">{}<button type=\"submit\" \
                     class=\"danger\" aria-label=\"Delete key {name}\">Delete</button></form>\
                     </td></tr>\n",
                    escape(&key.prefix),
                    escape(&key.permissions.join(", ")),
                    escape(&key.created_at),
                    escape(key.last_used_at.as_deref().unwrap_or("never")),
                    escape(&id),
                    html::csrf_field(&session.csrf),
                    name = escape(&key.name),
                ));
            }
            content.push_str("</tbody></table></div>\n");
        }
        Err(e) => {
            let (_, words) = DashboardError::from(e).words();
            content.push_str(&html::error_box(&format!(
                "Your keys cannot be listed: {words}"
            )));
        }
    }
    content.push_str("</section>\n");
    let frame = Frame {
        title: "API keys",
        nav: Nav::Keys,
        email: Some(&session.email),
        csrf: Some(&session.csrf),
        ws_token: None,
        script: None,
    };
    crate::html(status, html::page(&frame, &content), session.set_cookies)
}
