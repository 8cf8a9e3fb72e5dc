//! `portico admin …`: acts on the store the config names, so it works while a server runs
//! on the same SQLite file or PostgreSQL database.

use std::io::Read;

use portico_auth::service::AuthService;
use portico_auth::store::Store;
use portico_core::clock::SystemClock;

use crate::cli::{AdminCommand, JwksCommand, KeyCommand, UserCommand};
use crate::config::Config;
use crate::error::CliError;

/// Runs one admin command and prints its result to stdout.
pub fn run(config: &Config, command: AdminCommand) -> Result<(), CliError> {
    // Read the password before anything else, so a prompt-less pipe is consumed at once.
    let password = match &command {
        AdminCommand::User {
            command: UserCommand::Create { .. },
        } => Some(read_password()?),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Admin(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let url = config.database.url.as_ref().map(|u| u.as_str());
        let store = Store::open(url, &config.server.data_dir)
            .await
            .map_err(|e| CliError::Admin(format!("cannot open the database: {e}")))?;
        let auth = AuthService::start(
            crate::auth::settings(config),
            store,
            SystemClock::shared(),
        )
        .await
        .map_err(admin_error)?;
        match command {
            AdminCommand::User {
                command: UserCommand::Create { email, role, .. },
            } => {
                let password = password.unwrap_or_default();
                let user = auth
                    .admin_create_user(&email, &password, role.as_deref())
                    .await
                    .map_err(admin_error)?;
                println!(
                    "created user {} ({}) with role {}",
                    user.email,
                    user.id,
                    user.roles.join(", ")
                );
            }
            AdminCommand::User {
                command: UserCommand::Grant { email, role },
            } => {
                let granted = auth.admin_grant(&email, &role).await.map_err(admin_error)?;
                if granted {
                    println!("granted role {role} to {email}");
                } else {
                    println!("{email} already has role {role}");
                }
            }
            AdminCommand::Key {
                command:
                    KeyCommand::Create {
                        user,
                        name,
                        permission,
                    },
            } => {
                let key = auth
                    .admin_create_key(&user, &name, permission)
                    .await
                    .map_err(admin_error)?;
                eprintln!(
                    "created API key {:?} ({}) for {user} with permissions {}; it is shown once:",
                    key.name,
                    key.id,
                    key.permissions.join(", ")
                );
                println!("{}", key.key);
            }
            AdminCommand::Jwks {
                command: JwksCommand::Rotate,
            } => {
                let kid = auth.rotate_signing_keys().await.map_err(admin_error)?;
                println!(
                    "new signing key {kid}; the previous one stays published until its tokens expire"
                );
            }
        }
        Ok(())
    })
}

/// The password from standard input: the first line, without its line ending.
fn read_password() -> Result<String, CliError> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| CliError::Admin(format!("cannot read the password from stdin: {e}")))?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err(CliError::Admin(
            "no password on standard input (e.g. `echo \"$PASSWORD\" | portico admin user create …`)".into(),
        ));
    }
    Ok(password)
}

fn admin_error(e: portico_auth::error::AuthError) -> CliError {
    use portico_auth::error::AuthError;
    CliError::Admin(match e {
        AuthError::InvalidFields(fields) => fields
            .iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect::<Vec<_>>()
            .join("; "),
        AuthError::NotFound => "no such user".to_owned(),
        other => other.to_string(),
    })
}
