//! What a controller's code calls, as RBAC grants it: each controller declares its
//! [`Permission`]s beside the code that makes the calls, and `install` turns them into the
//! narrowest Roles. The install tests run each controller as its service account against an API
//! server that enforces RBAC, so a call the list does not grant (or a grant nothing calls) fails.

use serde::Serialize;

/// RBAC's verbs in the order rules list them.
const VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// Where a permission applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every namespace and cluster-scoped objects: a `ClusterRole`.
    Cluster,
    /// Only the namespace the controller runs in: a Role there.
    OwnNamespace,
}

/// One RBAC rule a controller needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    /// Where it applies.
    pub scope: Scope,
    /// The API group, empty for the core group.
    pub group: String,
    /// The resource (plural), `resource/subresource` for a subresource.
    pub resource: String,
    /// The verbs: get, list, watch, create, update, patch, delete.
    pub verbs: Vec<String>,
    /// Only objects of these names (RBAC's `resourceNames`); empty for every object.
    pub names: Vec<String>,
}

impl Permission {
    /// `verbs` on `group`'s `resource`, in `scope`.
    #[must_use]
    pub fn new(scope: Scope, group: &str, resource: &str, verbs: &[&str]) -> Self {
        Self {
            scope,
            group: group.to_owned(),
            resource: resource.to_owned(),
            verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
            names: Vec::new(),
        }
    }

    /// The same, for the objects named `names` only.
    #[must_use]
    pub fn named(mut self, names: &[&str]) -> Self {
        self.names = names.iter().map(|name| (*name).to_owned()).collect();
        self
    }

    /// Whether this grants `verb` on `group`'s `resource` (named `name`, when given).
    #[must_use]
    pub fn grants(&self, verb: &str, group: &str, resource: &str, name: Option<&str>) -> bool {
        self.group == group
            && self.resource == resource
            && self.verbs.iter().any(|v| v == verb)
            && (self.names.is_empty() || name.is_some_and(|n| self.names.iter().any(|m| m == n)))
    }

    /// `permissions` with one entry per scope, group, resource and names: what several parts
    /// of a controller need of one resource, as the single rule a reader of the Role expects.
    /// Verbs come in RBAC's usual order; entries keep the order they first appear in.
    #[must_use]
    pub fn merge(permissions: &[Permission]) -> Vec<Permission> {
        let mut merged: Vec<Permission> = Vec::with_capacity(permissions.len());
        for permission in permissions {
            let same = merged.iter_mut().find(|m| {
                (m.scope, &m.group, &m.resource, &m.names)
                    == (
                        permission.scope,
                        &permission.group,
                        &permission.resource,
                        &permission.names,
                    )
            });
            match same {
                Some(existing) => existing.verbs.extend(permission.verbs.iter().cloned()),
                None => merged.push(permission.clone()),
            }
        }
        for permission in &mut merged {
            let rank = |verb: &String| VERBS.iter().position(|v| v == verb).unwrap_or(VERBS.len());
            permission
                .verbs
                .sort_by_key(|verb| (rank(verb), verb.clone()));
            permission.verbs.dedup();
        }
        merged
    }

    /// The RBAC `PolicyRule`.
    #[must_use]
    pub fn rule(&self) -> serde_json::Value {
        let mut rule = serde_json::json!({
            "apiGroups": [self.group],
            "resources": [self.resource],
            "verbs": self.verbs,
        });
        if !self.names.is_empty() {
            rule["resourceNames"] = serde_json::json!(self.names);
        }
        rule
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_the_verbs_of_one_resource_and_keeps_names_apart() {
        let merged = Permission::merge(&[
            Permission::new(
                Scope::Cluster,
                "",
                "configmaps",
                &["get", "list", "patch", "delete"],
            ),
            Permission::new(Scope::Cluster, "apps", "deployments", &["watch", "list"]),
            Permission::new(
                Scope::Cluster,
                "",
                "configmaps",
                &["watch", "list", "delete"],
            ),
            Permission::new(Scope::OwnNamespace, "", "configmaps", &["get"]),
            Permission::new(Scope::Cluster, "", "configmaps", &["update"]).named(&["one"]),
        ]);
        let rules: Vec<(Scope, &str, Vec<&str>, usize)> = merged
            .iter()
            .map(|p| {
                let verbs = p.verbs.iter().map(String::as_str).collect();
                (p.scope, p.resource.as_str(), verbs, p.names.len())
            })
            .collect();
        assert_eq!(
            rules,
            [
                (
                    Scope::Cluster,
                    "configmaps",
                    vec!["get", "list", "watch", "patch", "delete"],
                    0
                ),
                (Scope::Cluster, "deployments", vec!["list", "watch"], 0),
                (Scope::OwnNamespace, "configmaps", vec!["get"], 0),
                (Scope::Cluster, "configmaps", vec!["update"], 1),
            ]
        );
        assert!(Permission::merge(&[]).is_empty());
    }
}
