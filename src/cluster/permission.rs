//! What a controller's code calls, as RBAC grants it: each controller declares its
//! [`Permission`]s beside the code that makes the calls, and `install` turns them into the
//! narrowest Roles. The install tests run each controller as its service account against an API
//! server that enforces RBAC, so a call the list does not grant (or a grant nothing calls) fails.

use serde::Serialize;

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
