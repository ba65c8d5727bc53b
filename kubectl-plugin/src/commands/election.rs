//! The leader-election flags `lead` and `reconcile controller` share.

use std::time::Duration;

use clap::Args;
use kubezen::cluster::election::ElectionOptions;

use super::sim::parse_duration;

/// Leader election among replicas on a coordination.k8s.io Lease.
#[derive(Debug, Args)]
#[command(next_help_heading = "Leader election")]
pub struct ElectionArgs {
    /// Elect one active replica on a coordination.k8s.io Lease (false: this process is the
    /// only replica) [default: true for lead, false for reconcile controller]
    #[arg(long, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub leader_elect: Option<bool>,

    /// The Lease's name [default: zen-lead-controller-leader-election for lead,
    /// zen-reconcile-GRAPH for reconcile controller]
    #[arg(long, value_name = "NAME")]
    pub leader_election_id: Option<String>,

    /// The Lease's namespace [default: the context's namespace]
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,

    /// This replica's name in the Lease [default: HOSTNAME-PID]
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,

    /// How long a Lease nobody renews stays held
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_duration: Duration,

    /// How long the active replica keeps reconciling while its renewals fail
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub renew_deadline: Duration,

    /// How often the Lease is renewed, or tried for by a standby
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub retry_period: Duration,
}

impl ElectionArgs {
    /// The election, or `None` when `--leader-elect` is false (`elect` when not given), on the
    /// Lease `--leader-election-id` (else `lease`) in `--leader-election-namespace` (else
    /// `namespace`).
    pub fn options(&self, elect: bool, lease: &str, namespace: &str) -> Option<ElectionOptions> {
        if !self.leader_elect.unwrap_or(elect) {
            return None;
        }
        let identity = self.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "kubectl-zen".into());
            format!("{host}-{}", std::process::id())
        });
        Some(ElectionOptions {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            ..ElectionOptions::new(
                self.leader_election_namespace
                    .as_deref()
                    .unwrap_or(namespace),
                self.leader_election_id.as_deref().unwrap_or(lease),
                &identity,
            )
        })
    }
}
