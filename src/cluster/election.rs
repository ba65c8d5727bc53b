//! Leader election among replicas of the controller, on a `coordination.k8s.io/v1` Lease, with
//! client-go's rules: a replica takes the Lease when it is free or when its holder has not
//! renewed it for `lease_duration` *as this replica observed it* (its own monotonic clock, so
//! clock skew between machines does not matter); the holder renews every `retry_period` and
//! gives up leading when it could not renew for `renew_deadline`, which is shorter than
//! `lease_duration`, so a standby takes over only after the old leader has stopped. Every write
//! carries the Lease's resourceVersion: of two replicas racing, one gets a 409 and stays standby.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::is_conflict;

/// How replicas elect the one that reconciles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionOptions {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's name in the Lease's `holderIdentity` (unique per replica).
    pub identity: String,
    /// How long a Lease nobody renews stays held.
    pub lease_duration: Duration,
    /// How long the leader keeps leading while its renewals fail.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby tries to take over.
    pub retry_period: Duration,
}

impl ElectionOptions {
    /// controller-runtime's timings (15 s lease, 10 s renew deadline, 2 s retry period) for a
    /// Lease `name` in `namespace`, held as `identity`.
    #[must_use]
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The options, or why they cannot work: the deadline must be shorter than the lease (else
    /// two replicas could lead at once) and the retry period shorter than the deadline.
    ///
    /// # Errors
    /// A message naming the timings that do not fit.
    pub fn checked(self) -> Result<Self, String> {
        if self.identity.is_empty() || self.name.is_empty() || self.namespace.is_empty() {
            return Err("leader election needs a Lease namespace, name and identity".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be above zero and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(self)
    }
}

/// What the election calls: the Lease created once, then read and replaced by name, in its own
/// namespace only (RBAC cannot name an object on create).
#[must_use]
pub fn permissions(options: &ElectionOptions) -> Vec<super::Permission> {
    use super::{Permission, Scope};
    vec![
        Permission::new(
            Scope::OwnNamespace,
            "coordination.k8s.io",
            "leases",
            &["create"],
        ),
        Permission::new(
            Scope::OwnNamespace,
            "coordination.k8s.io",
            "leases",
            &["get", "update"],
        )
        .named(&[options.name.as_str()]),
    ]
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    options: ElectionOptions,
    /// The holder and renew time last read, and when this replica first saw them.
    observed: Option<(String, Option<MicroTime>, Instant)>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Elector {
    /// An elector for `options` (see [`ElectionOptions::checked`]).
    #[must_use]
    pub fn new(client: kube::Client, options: ElectionOptions) -> Self {
        Self {
            api: Api::namespaced(client, &options.namespace),
            options,
            observed: None,
        }
    }

    /// Takes the Lease or renews it: `Ok(true)` when this replica holds it now, `Ok(false)` when
    /// another does (or won a race for it).
    ///
    /// # Errors
    /// The API server's, other than a conflict.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let me = self.options.identity.clone();
        let duration =
            i32::try_from(self.options.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.options.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.options.name.clone()),
                    namespace: Some(self.options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(error) if is_conflict(&error) => Ok(false),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let seen = (holder.clone(), spec.renew_time.clone());
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(h, r, _)| (h, r) != (&seen.0, &seen.1));
        if changed {
            self.observed = Some((seen.0, seen.1, Instant::now()));
        }
        let held_for = spec
            .lease_duration_seconds
            .and_then(|seconds| u64::try_from(seconds).ok())
            .map_or(self.options.lease_duration, Duration::from_secs);
        let observed_at = self.observed.as_ref().map_or_else(Instant::now, |o| o.2);
        if !holder.is_empty() && holder != me && observed_at.elapsed() < held_for {
            return Ok(false);
        }
        let mut next = spec;
        if holder != me {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.holder_identity = Some(me);
        next.lease_duration_seconds = Some(duration);
        next.renew_time = Some(now);
        lease.spec = Some(next);
        match self
            .api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up, if this replica holds it, so a standby takes over at its next try
    /// instead of after the lease duration.
    ///
    /// # Errors
    /// The API server's.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.options.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.options.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_conflict(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Logs an attempt that failed (an API error, or a timeout), once a minute at most while
    /// it keeps failing; a denial names the RBAC rule that is missing.
    fn say_failed(
        &self,
        attempt: &Result<Result<bool, kube::Error>, tokio::time::error::Elapsed>,
        repeats: &super::Repeats,
    ) {
        let lease = format!("{}/{}", self.options.namespace, self.options.name);
        let identity = self.options.identity.as_str();
        let (failure, cause) = match attempt {
            Ok(Ok(_)) => return,
            Ok(Err(error)) => {
                let failure = super::ApiFailure::of(error);
                let cause = failure.to_string();
                (Some(failure), cause)
            }
            Err(_) => (None, "timed out".to_owned()),
        };
        let super::Say::Now { repeats } = repeats.note("lease", &cause) else {
            return;
        };
        let rule = failure
            .as_ref()
            .and_then(|f| f.denied.as_ref())
            .map(|d| format!("; the RBAC rule missing is {}", d.missing_rule()))
            .unwrap_or_default();
        tracing::warn!(
            lease,
            identity,
            status = failure.as_ref().and_then(|f| f.code),
            repeats,
            "leader election: cannot take or renew the Lease {lease}: {cause}{rule}; trying again \
             in {:?}",
            self.options.retry_period
        );
    }

    /// Runs the election until `shutdown`: `leading` says whether this replica leads now. A
    /// leader that cannot renew for the renew deadline (counted from when its last successful
    /// renewal was sent) says `false` before anyone else can take the Lease; on shutdown a
    /// leader says `false`, then releases the Lease. Cancel `shutdown` only once the work done
    /// while leading has stopped.
    pub async fn run(mut self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
        let mut last_renewed: Option<Instant> = None;
        let lease = format!("{}/{}", self.options.namespace, self.options.name);
        let identity = self.options.identity.clone();
        let repeats = super::Repeats::new(Duration::from_secs(60));
        let mut said_standing_by = false;
        loop {
            // A renewal that hangs must not keep a leader leading past its deadline.
            let budget = last_renewed.map_or(self.options.renew_deadline, |at| {
                self.options.renew_deadline.saturating_sub(at.elapsed())
            });
            // A renewal counts from when it was sent: the Lease's renewTime is stamped before
            // the request, and a standby counts from when it saw that renewal.
            let sent = Instant::now();
            let attempt = tokio::select! {
                attempt = tokio::time::timeout(budget, self.try_acquire_or_renew()) => attempt,
                () = shutdown.cancelled() => break,
            };
            if let Ok(Ok(true)) = attempt {
                last_renewed = Some(sent);
                if leading.send_if_modified(|now| !std::mem::replace(now, true)) {
                    said_standing_by = false;
                    tracing::info!(
                        lease,
                        identity,
                        "leader election: {identity} holds the Lease {lease} and leads"
                    );
                }
            } else {
                if let Ok(Ok(false)) = attempt {
                    if !said_standing_by && last_renewed.is_none() {
                        said_standing_by = true;
                        let holder = self
                            .observed
                            .as_ref()
                            .map(|o| o.0.as_str())
                            .unwrap_or_default();
                        tracing::info!(
                            lease,
                            identity,
                            holder,
                            "leader election: {holder} holds the Lease {lease}; {identity} stands by"
                        );
                    }
                } else {
                    self.say_failed(&attempt, &repeats);
                }
                let lost = matches!(attempt, Ok(Ok(false)))
                    || last_renewed.is_none_or(|at| at.elapsed() >= self.options.renew_deadline);
                if lost {
                    last_renewed = None;
                    if leading.send_if_modified(|now| std::mem::replace(now, false)) {
                        tracing::warn!(
                            lease,
                            identity,
                            "leader election: {identity} lost the Lease {lease} and stops reconciling"
                        );
                    }
                }
            }
            // Spread the standbys' tries (client-go's jitter factor of 1.2).
            let pause = if last_renewed.is_some() {
                self.options.retry_period
            } else {
                self.options
                    .retry_period
                    .mul_f64(1.0 + 0.2 * fastrand::f64())
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => break,
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            match tokio::time::timeout(self.options.retry_period, self.release()).await {
                Ok(Ok(())) => tracing::info!(
                    lease,
                    identity,
                    "leader election: released the Lease {lease}"
                ),
                Ok(Err(error)) => tracing::warn!(
                    lease,
                    identity,
                    "leader election: could not release the Lease {lease} ({}); a standby takes it once it expires",
                    super::api_message(&error)
                ),
                Err(_) => tracing::warn!(
                    lease,
                    identity,
                    "leader election: releasing the Lease {lease} timed out; a standby takes it once it expires"
                ),
            }
        }
    }
}
