//! Fault injection: rules that make matching requests fail, slow down, or lose their watch.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum FaultAction {
    /// Answer with this HTTP status (429, 500, 503...) and a `Status` body; a 429 or 503 with
    /// `retry_after_seconds` carries a `Retry-After` header.
    Status {
        /// The HTTP status code.
        code: u16,
        /// Seconds for the `Retry-After` header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// Answer normally, this many milliseconds late.
    Delay {
        /// The added latency.
        millis: u64,
    },
    /// Close watch connections after this many events (0: right after the headers).
    DropWatch {
        /// Events delivered before the connection drops.
        after_events: u64,
    },
    /// Watches and continue tokens from any revision before now get 410 Gone (an etcd
    /// compaction).
    ExpireResourceVersions,
}

/// A rule: which requests, what happens, how many times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// The resource (`configmaps`, `deployments`...); `None` matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); `None` matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// How many matching requests it affects; `None` means every one until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

impl Fault {
    /// A fault on every request of `verb` to `resource` (either may be `"*"`).
    #[must_use]
    pub fn on(resource: &str, verb: &str, action: FaultAction) -> Self {
        let any = |text: &str| (text != "*" && !text.is_empty()).then(|| text.to_owned());
        Self {
            resource: any(resource),
            verb: any(verb),
            action,
            times: None,
        }
    }

    /// Limits the fault to the next `times` matching requests.
    #[must_use]
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    fn matches(&self, resource: &str, verb: &str) -> bool {
        self.resource
            .as_deref()
            .is_none_or(|wanted| wanted == resource)
            && self.verb.as_deref().is_none_or(|wanted| wanted == verb)
    }
}

/// The active rules, and how often each fired.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<(Fault, u64)>>,
}

impl Faults {
    /// Adds a rule; rules are tried in the order they were added.
    pub fn inject(&self, fault: Fault) {
        tracing::info!(fault = ?fault, "zen-sim fault injected: {fault:?}");
        self.lock().push((fault, 0));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules, with how many requests each has affected.
    #[must_use]
    pub fn list(&self) -> Vec<(Fault, u64)> {
        self.lock().clone()
    }

    /// The actions for a request (every matching rule fires once), used-up rules dropped.
    pub(crate) fn fire(&self, resource: &str, verb: &str) -> Vec<FaultAction> {
        let mut rules = self.lock();
        let mut actions = Vec::new();
        for (fault, fired) in rules.iter_mut() {
            if fault.matches(resource, verb) && fault.times.is_none_or(|times| *fired < times) {
                *fired += 1;
                actions.push(fault.action.clone());
            }
        }
        rules.retain(|(fault, fired)| fault.times.is_none_or(|times| *fired < times));
        actions
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Fault, u64)>> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The delay a set of actions adds.
pub(crate) fn delay_of(actions: &[FaultAction]) -> Duration {
    actions
        .iter()
        .map(|action| match action {
            FaultAction::Delay { millis } => Duration::from_millis(*millis),
            _ => Duration::ZERO,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_resource_and_verb_and_run_out() {
        let faults = Faults::default();
        faults.inject(
            Fault::on(
                "configmaps",
                "get",
                FaultAction::Status {
                    code: 429,
                    retry_after_seconds: Some(1),
                },
            )
            .times(2),
        );
        faults.inject(Fault::on("*", "list", FaultAction::Delay { millis: 5 }));
        assert!(faults.fire("secrets", "get").is_empty());
        assert_eq!(faults.fire("configmaps", "get").len(), 1);
        assert_eq!(faults.fire("configmaps", "get").len(), 1);
        assert!(faults.fire("configmaps", "get").is_empty(), "used up");
        assert_eq!(
            delay_of(&faults.fire("pods", "list")),
            Duration::from_millis(5)
        );
        assert_eq!(faults.list().len(), 1);
        faults.clear();
        assert!(faults.fire("pods", "list").is_empty());
    }

    #[test]
    fn rules_read_from_json() {
        let fault: Fault = serde_json::from_str(r#"{"resource": "pods", "verb": "watch", "action": {"type": "dropWatch", "afterEvents": 3}, "times": 1}"#).unwrap();
        assert_eq!(fault.action, FaultAction::DropWatch { after_events: 3 });
    }
}
