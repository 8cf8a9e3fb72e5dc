//! Roles and permissions: which permissions a set of roles grants, and whether a set of
//! permissions satisfies a requirement.
//!
//! Roles come from config (`[roles.admin] permissions = ["*"]`). Whether permissions satisfy
//! a requirement is [`portico_core::permissions`]' rule (exact, `*`, `etl.*`), re-exported
//! here. Per-resource roles (seed 003's viewer < collaborator < owner) belong to the
//! services owning the resource.

use std::collections::{BTreeMap, BTreeSet};

/// The configured roles and the permissions each grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    roles: BTreeMap<String, BTreeSet<String>>,
}

impl Roles {
    /// Roles from `(name, permissions)` pairs.
    pub fn new<I, P>(roles: I) -> Self
    where
        I: IntoIterator<Item = (String, P)>,
        P: IntoIterator<Item = String>,
    {
        Self {
            roles: roles
                .into_iter()
                .map(|(name, perms)| (name, perms.into_iter().collect()))
                .collect(),
        }
    }

    /// Whether `role` is configured.
    pub fn contains(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// The configured role names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// The union of the permissions of `roles`, sorted; unknown roles grant nothing.
    pub fn permissions_for<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut granted = BTreeSet::new();
        for role in roles {
            if let Some(perms) = self.roles.get(role) {
                granted.extend(perms.iter().cloned());
            }
        }
        granted.into_iter().collect()
    }
}

pub use portico_core::permissions::{permits, permits_all};

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn roles_grant_the_union_of_their_permissions() {
        let roles = Roles::new([
            ("user".to_string(), strings(&["search", "etl.access"])),
            ("analyst".to_string(), strings(&["etl.access", "reports"])),
        ]);
        assert_eq!(
            roles.permissions_for(["user", "analyst", "ghost"]),
            strings(&["etl.access", "reports", "search"])
        );
        assert!(roles.permissions_for([]).is_empty());
    }
}
