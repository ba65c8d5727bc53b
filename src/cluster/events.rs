//! Kubernetes Events the controllers record on the objects they act for, through kube-runtime's
//! recorder (`events.k8s.io/v1`; `kubectl describe` and `kubectl get events` show them), reported
//! as `kubectl-zen/<controller>` by the replica's pod name (`$HOSTNAME`).
//!
//! Recording is best-effort and never in a reconcile's way: [`Events::record`] queues (at most
//! 1,024 Events; more are dropped and counted), one task sends them on a client of its own
//! rate limit (5 a second, 25 at once), so a thousand leaders chosen at start-up do not take the
//! reconciles' request budget. An Event the server refuses is logged, once a minute at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use super::{ApiFailure, Cluster, Repeats, Say};

/// The most an Event's note may hold (the API server refuses more).
const MAX_NOTE: usize = 1024;
/// Events waiting to be sent at most.
const QUEUE: usize = 1024;
/// Events sent a second at most, after a [`BURST`].
const QPS: f64 = 5.0;
/// Events sent at once at most.
const BURST: u32 = 25;

/// Normal or Warning, as `kubectl describe` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something done.
    Normal,
    /// Something that needs a look.
    Warning,
}

struct Queued {
    regarding: ObjectReference,
    event: Event,
}

/// Records Events for one controller. Cheap to clone; the sending task ends with the last clone.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<Queued>,
    dropped: Arc<AtomicU64>,
    controller: Arc<str>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("controller", &self.controller)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// A recorder reporting as `kubectl-zen/<controller>`, sending from a task of its own. Must
    /// be called inside a tokio runtime.
    #[must_use]
    pub fn new(cluster: &Cluster, controller: &str) -> Self {
        let client = cluster
            .with_rate(QPS, BURST)
            .map_or_else(|_| cluster.client(), |own| own.client());
        let reporter = Reporter {
            controller: format!("kubectl-zen/{controller}"),
            instance: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
        };
        let (queue, mut queued) = mpsc::channel::<Queued>(QUEUE);
        let recorder = Recorder::new(client, reporter);
        let name: Arc<str> = controller.into();
        let sender = Arc::clone(&name);
        tokio::spawn(async move {
            let refused = Repeats::new(Duration::from_secs(60));
            while let Some(Queued { regarding, event }) = queued.recv().await {
                if let Err(error) = recorder.publish(&event, &regarding).await {
                    say_refused(&sender, &regarding, &event.reason, &error, &refused);
                }
            }
        });
        Self {
            queue,
            dropped: Arc::default(),
            controller: name,
        }
    }

    /// What recording needs RBAC to grant: `events.k8s.io` Events, created, and patched when
    /// the same Event repeats (a series), in the namespaces of the objects they regard.
    #[must_use]
    pub fn permission() -> super::Permission {
        super::Permission::new(
            super::Scope::Cluster,
            "events.k8s.io",
            "events",
            &["create", "patch"],
        )
    }

    /// Queues `reason` (`PascalCase`) for `action` on `regarding`, with `note` (cut to the
    /// 1 KiB the server takes). The same reason on the same object again within minutes
    /// becomes a series (one Event, its count raised, its first note kept) rather than another
    /// Event. Dropped, and counted, when 1,024 Events already wait.
    pub fn record(
        &self,
        regarding: ObjectReference,
        severity: Severity,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        self.record_related(regarding, None, severity, reason, action, note);
    }

    /// [`Events::record`], with the object the Event is also about (`related`, such as the pod
    /// a Service now routes to). Events are a series only when the related object is the same
    /// too: another pod is another Event, with its own note.
    pub fn record_related(
        &self,
        regarding: ObjectReference,
        related: Option<ObjectReference>,
        severity: Severity,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = Event {
            type_: match severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: reason.to_owned(),
            note: Some(truncate(note, MAX_NOTE)),
            action: action.to_owned(),
            secondary: related,
        };
        if self.queue.try_send(Queued { regarding, event }).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    controller = &*self.controller,
                    dropped,
                    "{dropped} Events dropped so far: more than {QUEUE} waited to be sent"
                );
            }
        }
    }

    /// Events dropped because the queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn say_refused(
    controller: &str,
    regarding: &ObjectReference,
    reason: &str,
    error: &kube::Error,
    refused: &Repeats,
) {
    let failure = ApiFailure::of(error);
    let Say::Now { repeats } = refused.note("events", &failure.to_string()) else {
        return;
    };
    let rule = failure
        .denied
        .as_ref()
        .map(|d| format!("; the RBAC rule missing is {}", d.missing_rule()))
        .unwrap_or_default();
    tracing::warn!(
        controller,
        reason,
        status = failure.code,
        repeats,
        "cannot record the {reason} Event on {} {}/{}: {failure}{rule}",
        regarding.kind.as_deref().unwrap_or_default(),
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default(),
    );
}

/// `text` cut to at most `limit` bytes, on a character boundary, marked with `…` when cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_to_what_the_server_takes_on_a_character_boundary() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(600); // 1,200 bytes
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && cut.ends_with('…'), "{}", cut.len());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // Nothing listens at this address: every send fails, slowly enough to fill the queue.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let cluster = Cluster::from_config(config, &crate::cluster::ClusterOptions::default())
            .expect("a client");
        let events = Events::new(&cluster, "test");
        for _ in 0..QUEUE + 50 {
            events.record(ObjectReference::default(), Severity::Normal, "R", "A", "n");
        }
        assert!(events.dropped() >= 49, "{}", events.dropped());
    }
}
