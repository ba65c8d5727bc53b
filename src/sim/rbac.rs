//! RBAC for impersonated requests: a request that carries `Impersonate-User` (as `kubectl --as`
//! and a kubeconfig's `as:` send it) is authorized against the stored Roles, `ClusterRoles` and
//! their bindings with Kubernetes' rules, refused with the API server's 403 when nothing grants
//! it, and recorded, allowed or not, so tests can compare what a controller called with what its
//! role grants. Requests without the header are the cluster admin's, as before. `kubectl auth
//! can-i` is answered through `SelfSubjectAccessReview`.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use super::select::{FieldSelector, LabelSelector};
use super::store::Store;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject {
    pub(crate) user: String,
    pub(crate) groups: Vec<String>,
}

impl Subject {
    /// The impersonated user of a request, with the groups Kubernetes gives it: those asked for,
    /// `system:authenticated`, and a service account's `system:serviceaccounts[:NAMESPACE]`.
    /// `None` for a request without `Impersonate-User` (the admin).
    pub(crate) fn of(headers: &http::HeaderMap) -> Option<Self> {
        let user = headers
            .get("impersonate-user")
            .and_then(|value| value.to_str().ok())
            .filter(|user| !user.is_empty())?
            .to_owned();
        let mut groups: Vec<String> = headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::to_owned)
            .collect();
        if let Some(rest) = user.strip_prefix("system:serviceaccount:")
            && let Some((namespace, _)) = rest.split_once(':')
        {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{namespace}"));
        }
        groups.push("system:authenticated".into());
        Some(Self { user, groups })
    }

    fn is(&self, subject: &Value, binding_namespace: &str) -> bool {
        let name = subject["name"].as_str().unwrap_or_default();
        match subject["kind"].as_str() {
            Some("ServiceAccount") => {
                let namespace = subject["namespace"]
                    .as_str()
                    .filter(|namespace| !namespace.is_empty())
                    .unwrap_or(binding_namespace);
                self.user == format!("system:serviceaccount:{namespace}:{name}")
            }
            Some("User") => self.user == name,
            Some("Group") => self.groups.iter().any(|group| group == name),
            _ => false,
        }
    }
}

/// What a request asks to do, as RBAC sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub(crate) verb: String,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) subresource: String,
    /// Empty for cluster-scoped objects and for lists and watches across namespaces.
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Attributes {
    fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// One kind of request an impersonated user made, and whether RBAC allowed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Access {
    /// The impersonated user, e.g. `system:serviceaccount:kubezen-system:zen-lead`.
    pub user: String,
    /// The verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// The API group, empty for the core group.
    pub group: String,
    /// The resource, with its subresource after a slash: `services`, `leases`, `pods/status`.
    pub resource: String,
    /// The namespace, empty for cluster-scoped objects and lists across namespaces.
    pub namespace: String,
    /// Whether a role granted it.
    pub allowed: bool,
}

/// Every distinct access, for the admin API and tests.
#[derive(Debug, Default)]
pub(crate) struct AccessLog(Mutex<BTreeSet<Access>>);

impl AccessLog {
    fn record(&self, access: Access) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(access);
    }

    pub(crate) fn list(&self) -> Vec<Access> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// Authorizes `attributes` for `subject`, records the outcome, and refuses it as the API server
/// does when no rule grants it.
pub(crate) fn check(
    store: &Store,
    log: &AccessLog,
    subject: &Subject,
    attributes: &Attributes,
) -> Result<(), ApiError> {
    let allowed = allows(store, subject, attributes);
    log.record(Access {
        user: subject.user.clone(),
        verb: attributes.verb.clone(),
        group: attributes.group.clone(),
        resource: attributes.resource_path(),
        namespace: attributes.namespace.clone(),
        allowed,
    });
    if allowed {
        return Ok(());
    }
    Err(forbidden(subject, attributes))
}

fn forbidden(subject: &Subject, attributes: &Attributes) -> ApiError {
    let what = if attributes.name.is_empty() {
        attributes.resource_path()
    } else {
        format!("{} {:?}", attributes.resource_path(), attributes.name)
    };
    let scope = if attributes.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", attributes.namespace)
    };
    ApiError::new(
        403,
        "Forbidden",
        format!(
            "{what} is forbidden: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            subject.user,
            attributes.verb,
            attributes.resource_path(),
            attributes.group
        ),
    )
}

/// Whether any binding of `subject` grants `attributes`.
pub(crate) fn allows(store: &Store, subject: &Subject, attributes: &Attributes) -> bool {
    // Every authenticated user may ask what it may do (system:basic-user).
    if attributes.group == "authorization.k8s.io"
        && matches!(
            attributes.resource.as_str(),
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
        && attributes.verb == "create"
    {
        return true;
    }
    let cluster_bindings = objects(store, "clusterrolebindings", None);
    let granted_by = |role: &Value| {
        role["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|rule| grants(rule, attributes)))
    };
    let cluster_role = |name: &str| {
        objects(store, "clusterroles", None)
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
    };
    for binding in &cluster_bindings {
        if binding["roleRef"]["kind"] == "ClusterRole"
            && bound(binding, subject, "")
            && binding["roleRef"]["name"]
                .as_str()
                .and_then(cluster_role)
                .is_some_and(|role| granted_by(&role))
        {
            return true;
        }
    }
    if attributes.namespace.is_empty() {
        return false;
    }
    let namespace = attributes.namespace.as_str();
    for binding in objects(store, "rolebindings", Some(namespace)) {
        if !bound(&binding, subject, namespace) {
            continue;
        }
        let Some(name) = binding["roleRef"]["name"].as_str() else {
            continue;
        };
        let role = match binding["roleRef"]["kind"].as_str() {
            Some("Role") => objects(store, "roles", Some(namespace))
                .into_iter()
                .find(|role| role["metadata"]["name"] == name),
            Some("ClusterRole") => cluster_role(name),
            _ => None,
        };
        if role.is_some_and(|role| granted_by(&role)) {
            return true;
        }
    }
    false
}

fn bound(binding: &Value, subject: &Subject, namespace: &str) -> bool {
    binding["subjects"]
        .as_array()
        .is_some_and(|subjects| subjects.iter().any(|s| subject.is(s, namespace)))
}

fn objects(store: &Store, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(resource) = store.resource("rbac.authorization.k8s.io", "v1", plural) else {
        return Vec::new();
    };
    store
        .list(
            &resource,
            namespace,
            &LabelSelector::default(),
            &FieldSelector::default(),
            None,
            None,
        )
        .map(|page| page.items.iter().map(|stored| stored.value()).collect())
        .unwrap_or_default()
}

/// Whether one `PolicyRule` grants the request, with RBAC's wildcards.
fn grants(rule: &Value, attributes: &Attributes) -> bool {
    let has = |field: &str, wanted: &str| {
        rule[field]
            .as_array()
            .is_some_and(|values| values.iter().any(|v| v == "*" || v == wanted))
    };
    let resource_matches = rule["resources"].as_array().is_some_and(|resources| {
        resources.iter().filter_map(Value::as_str).any(|resource| {
            resource == "*"
                || resource == attributes.resource_path()
                || (!attributes.subresource.is_empty()
                    && resource == format!("*/{}", attributes.subresource))
        })
    });
    let names = rule["resourceNames"].as_array().filter(|n| !n.is_empty());
    has("verbs", &attributes.verb)
        && has("apiGroups", &attributes.group)
        && resource_matches
        && names.is_none_or(|names| {
            !attributes.name.is_empty() && names.iter().any(|name| name == &*attributes.name)
        })
}

/// The answer to a `SelfSubjectAccessReview` body: may `subject` (or the admin) do what its
/// `spec.resourceAttributes` says?
pub(crate) fn review(
    store: &Store,
    subject: Option<&Subject>,
    body: &Value,
) -> Result<Value, ApiError> {
    let spec = &body["spec"];
    let allowed = if let Some(attrs) = spec.get("resourceAttributes").filter(|a| a.is_object()) {
        let text = |field: &str| attrs[field].as_str().unwrap_or_default().to_owned();
        let attributes = Attributes {
            verb: text("verb"),
            group: text("group"),
            resource: text("resource"),
            subresource: text("subresource"),
            namespace: text("namespace"),
            name: text("name"),
        };
        if attributes.verb.is_empty() || attributes.resource.is_empty() {
            return Err(ApiError::bad_request(
                "spec.resourceAttributes needs a verb and a resource",
            ));
        }
        subject.is_none_or(|subject| allows(store, subject, &attributes))
    } else if spec
        .get("nonResourceAttributes")
        .is_some_and(Value::is_object)
    {
        // Discovery and health paths are every authenticated user's (system:discovery).
        true
    } else {
        return Err(ApiError::bad_request(
            "spec needs resourceAttributes or nonResourceAttributes",
        ));
    };
    let reason = if allowed {
        "allowed by zen-sim RBAC"
    } else {
        "no Role or ClusterRole bound to the user grants it"
    };
    Ok(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": allowed, "reason": reason},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(verb: &str, group: &str, resource: &str, namespace: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let rule = json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "verbs": ["get", "update"], "resourceNames": ["zen-lead"]});
        let mut get = attributes("get", "coordination.k8s.io", "leases", "ns");
        assert!(!grants(&rule, &get), "a named rule needs the name");
        get.name = "zen-lead".into();
        assert!(grants(&rule, &get));
        get.name = "other".into();
        assert!(!grants(&rule, &get));
        assert!(!grants(
            &rule,
            &attributes("create", "coordination.k8s.io", "leases", "ns")
        ));
        assert!(!grants(&rule, &attributes("get", "", "leases", "ns")));
        let wild = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(grants(
            &wild,
            &attributes("delete", "apps", "deployments", "")
        ));
        let status = json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]});
        let mut patch = attributes("patch", "", "pods", "ns");
        assert!(
            !grants(&status, &patch),
            "the resource is not its subresource"
        );
        patch.subresource = "status".into();
        assert!(grants(&status, &patch));
        let any_status = json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]});
        assert!(grants(&any_status, &patch));
    }

    #[test]
    fn impersonated_service_accounts_get_their_groups() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Subject::of(&headers), None);
        headers.insert(
            "impersonate-user",
            "system:serviceaccount:tools:zen".parse().unwrap(),
        );
        headers.append("impersonate-group", "team".parse().unwrap());
        let subject = Subject::of(&headers).unwrap();
        assert_eq!(
            subject.groups,
            [
                "team",
                "system:serviceaccounts",
                "system:serviceaccounts:tools",
                "system:authenticated"
            ]
        );
        assert!(subject.is(
            &json!({"kind": "ServiceAccount", "name": "zen", "namespace": "tools"}),
            ""
        ));
        assert!(subject.is(&json!({"kind": "ServiceAccount", "name": "zen"}), "tools"));
        assert!(!subject.is(
            &json!({"kind": "ServiceAccount", "name": "zen", "namespace": "x"}),
            "tools"
        ));
        assert!(subject.is(&json!({"kind": "Group", "name": "team"}), ""));
        assert!(!subject.is(&json!({"kind": "User", "name": "zen"}), ""));
    }
}
