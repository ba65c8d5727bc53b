//! What a failed API call means, said once: the status code, the server's reason and message,
//! and for a 403 the RBAC rule that is missing. The controllers log and record Events from it,
//! and [`Repeats`] keeps a failure that repeats from flooding the log.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A failed API call, read from the error the client returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiFailure {
    /// The HTTP status code, when the server answered.
    pub code: Option<u16>,
    /// The server's reason (`Forbidden`, `Conflict`, ...), or the kind of client error.
    pub reason: String,
    /// What the server (or the client) said.
    pub message: String,
    /// For a 403 the server explained: who was refused what.
    pub denied: Option<Denial>,
}

impl ApiFailure {
    /// Reads `error`.
    #[must_use]
    pub fn of(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Self {
                code: Some(status.code),
                reason: status.reason.clone(),
                message: status.message.clone(),
                denied: (status.code == 403)
                    .then(|| Denial::parse(&status.message))
                    .flatten(),
            },
            other => Self {
                code: None,
                reason: client_reason(other).to_owned(),
                message: other.to_string(),
                denied: None,
            },
        }
    }

    /// Whether the server refused the call for want of a permission.
    #[must_use]
    pub fn is_denied(&self) -> bool {
        self.code == Some(403)
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{code} {}: {}", self.reason, self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn client_reason(error: &kube::Error) -> &'static str {
    match error {
        kube::Error::HyperError(_) | kube::Error::Service(_) => "Unreachable",
        kube::Error::SerdeError(_) => "BadResponse",
        kube::Error::Auth(_) => "Unauthenticated",
        _ => "ClientError",
    }
}

/// Who the API server refused what, as its RBAC authorizer words a 403: `User "U" cannot VERB
/// resource "R" in API group "G" in the namespace "N"` (or `at the cluster scope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// The user refused (a service account is `system:serviceaccount:NS:NAME`).
    pub user: String,
    /// The verb refused.
    pub verb: String,
    /// The resource, `resource/subresource` for a subresource.
    pub resource: String,
    /// The API group, empty for the core group.
    pub group: String,
    /// The namespace, `None` at the cluster scope.
    pub namespace: Option<String>,
}

impl Denial {
    /// Reads a 403's message; `None` when it is not the authorizer's wording.
    #[must_use]
    pub fn parse(message: &str) -> Option<Self> {
        let rest = &message[message.find("User \"")? + 6..];
        let (user, rest) = rest.split_once("\" cannot ")?;
        let (verb, rest) = rest.split_once(" resource \"")?;
        let (resource, rest) = rest.split_once("\" in API group \"")?;
        let (group, rest) = rest.split_once('"')?;
        let rest = rest.trim_start();
        let namespace = if let Some(scoped) = rest.strip_prefix("in the namespace \"") {
            Some(scoped.split_once('"')?.0.to_owned())
        } else if rest.starts_with("at the cluster scope") {
            None
        } else {
            return None;
        };
        Some(Self {
            user: user.to_owned(),
            verb: verb.to_owned(),
            resource: resource.to_owned(),
            group: group.to_owned(),
            namespace,
        })
    }

    /// The rule that would grant the call, as a Role (or, at the cluster scope, a
    /// `ClusterRole`) lists it.
    #[must_use]
    pub fn missing_rule(&self) -> String {
        let role = match &self.namespace {
            Some(namespace) => format!("a Role in namespace {namespace}"),
            None => "a ClusterRole".to_owned(),
        };
        format!(
            "{{apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{}\"]}} in {role} bound to {}",
            self.group, self.resource, self.verb, self.user
        )
    }
}

/// Keeps a failure that repeats from flooding the log: the first of a kind is said, the same
/// again only once `every` has passed, with the count of those not said; a new cause is said
/// at once. Keyed by what failed (an object), bounded in size.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    seen: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug)]
struct Seen {
    cause: String,
    said_at: Instant,
    unsaid: u64,
}

/// What to do with a failure [`Repeats::note`] was told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// Say it: the first of its kind, or `every` has passed. `repeats` is how many times the
    /// same failure happened since it was last said.
    Now {
        /// Times it failed the same way since it was last said.
        repeats: u64,
    },
    /// Said not long ago: counted, not said.
    Quiet,
}

/// Entries kept at most: a controller of more failing objects than this forgets the oldest.
const MAX_KEYS: usize = 10_000;

impl Repeats {
    /// Failures that repeat are said at most once per `every`.
    #[must_use]
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            seen: Mutex::default(),
        }
    }

    /// `key` failed with `cause`: whether to say so.
    pub fn note(&self, key: &str, cause: &str) -> Say {
        self.note_at(key, cause, Instant::now())
    }

    fn note_at(&self, key: &str, cause: &str, now: Instant) -> Say {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = seen.get_mut(key)
            && entry.cause == cause
        {
            if now.duration_since(entry.said_at) < self.every {
                entry.unsaid += 1;
                return Say::Quiet;
            }
            let repeats = entry.unsaid;
            entry.unsaid = 0;
            entry.said_at = now;
            return Say::Now { repeats };
        }
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            // The oldest said is forgotten: at worst it is said again.
            if let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, entry)| entry.said_at)
                .map(|(key, _)| key.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(
            key.to_owned(),
            Seen {
                cause: cause.to_owned(),
                said_at: now,
                unsaid: 0,
            },
        );
        Say::Now { repeats: 0 }
    }

    /// `key` succeeded: returns how many failures it had in a row (0 when none), and forgets
    /// them.
    pub fn recovered(&self, key: &str) -> u64 {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key)
            .map_or(0, |entry| entry.unsaid + 1)
    }
}

/// A failed reconcile, logged the one way every controller logs it: at warn with the object,
/// the API status and what happens next, or at error naming the missing RBAC rule when it was
/// a denial; a failure that repeats is said once per [`Repeats`] interval, with its count.
#[derive(Debug)]
pub struct FailedReconcile<'a> {
    /// The controller: `zen-lead`, `reconcile-controller`.
    pub controller: &'a str,
    /// The kind of the object reconciled.
    pub kind: &'a str,
    /// Its namespace, `None` for a cluster-scoped object.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// Why it failed, in words.
    pub cause: &'a str,
    /// The API call's failure, when one failed.
    pub failure: Option<&'a ApiFailure>,
    /// When it is tried again.
    pub retry_in: Duration,
}

impl FailedReconcile<'_> {
    /// Logs it, unless `repeats` says it was said not long ago; returns whether it was said
    /// (what else reports it, an Event, follows the same pace).
    pub fn log(&self, repeats: &Repeats) -> bool {
        let object = match self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.to_owned(),
        };
        let key = format!("{}/{object}", self.kind);
        let Say::Now { repeats } = repeats.note(&key, self.cause) else {
            return false;
        };
        let again = if repeats > 0 {
            format!(" (and {repeats} times more since it was last said)")
        } else {
            String::new()
        };
        let retry_in = self.retry_in.as_secs_f64();
        let (status, reason) = self
            .failure
            .map_or((None, ""), |f| (f.code, f.reason.as_str()));
        let namespace = self.namespace.unwrap_or_default();
        // A failure reported in words (an object of a graph) still names its denial.
        let parsed = self
            .failure
            .is_none()
            .then(|| Denial::parse(self.cause))
            .flatten();
        if let Some(denied) = self
            .failure
            .and_then(|f| f.denied.as_ref())
            .or(parsed.as_ref())
        {
            tracing::error!(
                controller = self.controller,
                kind = self.kind,
                namespace,
                name = self.name,
                status,
                reason,
                verb = denied.verb.as_str(),
                resource = denied.resource.as_str(),
                group = denied.group.as_str(),
                denied_namespace = denied.namespace.as_deref().unwrap_or_default(),
                user = denied.user.as_str(),
                repeats,
                retry_in_seconds = retry_in,
                "permission denied reconciling {} {object}: {} may not {} {}; the RBAC rule missing is {}; retrying in {retry_in}s{again}",
                self.kind,
                denied.user,
                denied.verb,
                denied.resource,
                denied.missing_rule(),
            );
        } else if self.failure.is_some_and(ApiFailure::is_denied) {
            tracing::error!(
                controller = self.controller,
                kind = self.kind,
                namespace,
                name = self.name,
                status,
                reason,
                repeats,
                retry_in_seconds = retry_in,
                "permission denied reconciling {} {object}: {}; retrying in {retry_in}s{again}",
                self.kind,
                self.cause,
            );
        } else {
            tracing::warn!(
                controller = self.controller,
                kind = self.kind,
                namespace,
                name = self.name,
                status,
                reason,
                repeats,
                retry_in_seconds = retry_in,
                "reconcile of {} {object} failed: {}; retrying in {retry_in}s{again}",
                self.kind,
                self.cause,
            );
        }
        true
    }

    /// Whether the failure was a permission denial (a 403, or a cause in the authorizer's words).
    #[must_use]
    pub fn denied(&self) -> bool {
        self.failure.is_some_and(ApiFailure::is_denied) || Denial::parse(self.cause).is_some()
    }
}

/// Logs that `kind` `object` reconciled after failing `failures` times in a row (none said
/// when it had not failed).
pub fn log_recovered(controller: &str, kind: &str, object: &str, repeats: &Repeats) {
    let failures = repeats.recovered(&format!("{kind}/{object}"));
    if failures > 0 {
        tracing::info!(
            controller,
            kind,
            object,
            failures,
            "{kind} {object} reconciled again after {failures} failed attempts"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_denial_names_the_rule_that_is_missing() {
        let message = "services \"web-leader\" is forbidden: User \
            \"system:serviceaccount:kubezen-system:zen-lead\" cannot patch resource \"services\" \
            in API group \"\" in the namespace \"default\"";
        let denial = Denial::parse(message).expect("the authorizer's wording");
        assert_eq!(
            denial,
            Denial {
                user: "system:serviceaccount:kubezen-system:zen-lead".into(),
                verb: "patch".into(),
                resource: "services".into(),
                group: String::new(),
                namespace: Some("default".into()),
            }
        );
        assert_eq!(
            denial.missing_rule(),
            "{apiGroups: [\"\"], resources: [\"services\"], verbs: [\"patch\"]} in a Role in \
             namespace default bound to system:serviceaccount:kubezen-system:zen-lead"
        );
    }

    #[test]
    fn a_cluster_scoped_denial_and_a_subresource_are_read_too() {
        // With the reason RBAC appends on a real server.
        let message = "widgets.zen.example/status is forbidden: User \"alice\" cannot patch \
            resource \"widgets/status\" in API group \"zen.example\" at the cluster scope: \
            RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found";
        let denial = Denial::parse(message).expect("read");
        assert_eq!(denial.resource, "widgets/status");
        assert_eq!(denial.group, "zen.example");
        assert_eq!(denial.namespace, None);
        assert!(
            denial
                .missing_rule()
                .contains("in a ClusterRole bound to alice")
        );
    }

    #[test]
    fn other_wording_is_not_taken_for_a_denial() {
        for message in [
            "",
            "forbidden",
            "User \"a\" cannot",
            "User \"a\" cannot get resource \"pods\" in API group \"\" somewhere else",
            "namespaces \"x\" is forbidden: unable to create new content in namespace x",
        ] {
            assert_eq!(Denial::parse(message), None, "{message}");
        }
    }

    #[test]
    fn an_api_error_is_read_with_its_code_and_a_403_with_its_denial() {
        let status = |code: u16, reason: &str, message: &str| {
            kube::Error::Api(
                kube::core::Status::failure(message, reason)
                    .with_code(code)
                    .boxed(),
            )
        };
        let conflict = ApiFailure::of(&status(409, "Conflict", "the object has been modified"));
        assert_eq!(conflict.code, Some(409));
        assert!(!conflict.is_denied() && conflict.denied.is_none());
        assert_eq!(
            conflict.to_string(),
            "409 Conflict: the object has been modified"
        );
        let denied = ApiFailure::of(&status(
            403,
            "Forbidden",
            "pods is forbidden: User \"u\" cannot list resource \"pods\" in API group \"\" at \
             the cluster scope",
        ));
        assert!(denied.is_denied());
        assert_eq!(denied.denied.map(|d| d.verb), Some("list".to_owned()));
    }

    #[test]
    fn a_repeated_failure_is_said_once_per_interval_with_its_count() {
        let repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        assert_eq!(repeats.note_at("a", "403", at(0)), Say::Now { repeats: 0 });
        for second in 1..=5 {
            assert_eq!(repeats.note_at("a", "403", at(second)), Say::Quiet);
        }
        // Another object, and another cause, are said at once.
        assert_eq!(repeats.note_at("b", "403", at(6)), Say::Now { repeats: 0 });
        assert_eq!(repeats.note_at("a", "500", at(7)), Say::Now { repeats: 0 });
        assert_eq!(repeats.note_at("a", "500", at(8)), Say::Quiet);
        assert_eq!(repeats.note_at("a", "500", at(68)), Say::Now { repeats: 1 });
        assert_eq!(repeats.recovered("a"), 1);
        assert_eq!(repeats.recovered("a"), 0);
    }

    #[test]
    fn the_failures_remembered_are_bounded() {
        let repeats = Repeats::new(Duration::from_secs(60));
        let start = Instant::now();
        for index in 0..MAX_KEYS + 10 {
            let at = start + Duration::from_millis(index as u64);
            let _ = repeats.note_at(&index.to_string(), "x", at);
        }
        assert_eq!(
            repeats
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len(),
            MAX_KEYS
        );
    }
}
