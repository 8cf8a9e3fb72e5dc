//! Configuration: one TOML file plus `PORTICO_` environment overrides, typed and checked.
//!
//! Loading is one pipeline (see [`load()`]): read the file → parse it into a tree whose values
//! remember their line → graft the env overrides (values remember their variable) →
//! substitute `${NAME}` in every string → read the tree into the checked [`Config`]. Every
//! step records problems instead of stopping, so a bad config is answered with all of its
//! problems at once, one line each, naming the key and its line or variable.
//!
//! # Layout
//! - [`load`](mod@load): the pipeline and [`ConfigSource`] (which file, or the defaults).
//! - [`mod@env`]: [`Env`], the override variables and their names.
//! - [`schema`]: the checked config types, section by section, with their defaults.
//! - [`types`]: checked leaf types: [`Secret`], [`Url`], [`UrlPath`], the enums.
//! - [`problem`]: [`Problem`] and [`ConfigErrors`].
//! - `tree`, `substitution`, `reader`: the value tree with origins, `${NAME}` references,
//!   and the typed reading of the tree.

pub mod env;
pub mod load;
pub mod problem;
mod reader;
pub mod schema;
mod substitution;
mod tree;
pub mod types;

pub use env::Env;
pub use load::{ConfigSource, load, load_str};
pub use problem::{ConfigErrors, Location, Problem};
pub use schema::{AliasConfig, Config};
pub use types::{AuthMode, RateLimitKey, Secret, Url, UrlPath};
