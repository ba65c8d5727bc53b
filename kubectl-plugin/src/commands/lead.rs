//! `kubectl zen lead`: run zen-lead's leader-Service controller, or show its state.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kubezen::lead::{self, LeadOptions, LeaderStatus};
use kubezen::table::{Cell, Column, Table};
use kubezen::{Tabular, Tone};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{election::ElectionArgs, on_interrupt, sim::parse_duration};
use crate::cli::GlobalArgs;
use crate::error::{EXIT_FAILURE, EXIT_OK, Failure};
use crate::output::Output;

pub const LONG_ABOUT: &str = "\
Run zen-lead's leader-Service controller, or show what it maintains.

Every Service annotated zen-lead.io/enabled=\"true\" gets a selector-less Service <svc>-leader and
one EndpointSlice holding exactly one Ready pod: clients that connect to <svc>-leader reach a
single active replica, with no code change and no pod ever written. The leader stays while it is
Ready (sticky); otherwise the pod Ready the longest takes over.

Annotations on the Service:
  zen-lead.io/enabled: \"true\"            opt in (remove it and the leader Service goes)
  zen-lead.io/leader-service-name: NAME  instead of <svc>-leader
  zen-lead.io/sticky: \"false\"            let a pod Ready longer take over from a healthy leader
  zen-lead.io/min-ready-duration: 30s    a pod must be Ready this long to become leader
  zen-lead.io/failover-min-delay: 5s     a NotReady leader keeps the role this long first
                                         (a deleted or terminating leader is replaced at once)

The leader Service records zen-lead.io/leader-pod-name, leader-pod-uid and
leader-last-switch-time; both objects carry app.kubernetes.io/managed-by=zen-lead and are owned by
the Service, so deleting it deletes them.";

const EXAMPLES: &str = "\
Examples:
  # Opt a Service in, then run the controller (Ctrl-C to stop)
  kubectl annotate service my-app zen-lead.io/enabled=true
  kubectl zen lead --metrics-addr 127.0.0.1:8080

  # Two replicas: only the one holding the Lease reconciles
  kubectl zen lead --leader-election-namespace kube-system --identity replica-a

  # Every opted-in Service, its leader and what is wrong (exit 1 if anything is)
  kubectl zen lead status -A

Metrics on --metrics-addr /metrics (with /healthz and /readyz):
  zen_lead_reconciliation_duration_seconds  zen_lead_failover_latency_seconds
  zen_lead_failover_count_total             zen_lead_leader_service_without_endpoints
  zen_lead_cache_hits_total  zen_lead_cache_misses_total  zen_lead_cache_size
  zen_lead_retry_attempts_total  zen_lead_retry_success_after_retry_total
  zen_lead_timeout_occurrences_total        zen_lead_is_leader";

/// `kubectl zen lead`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct LeadArgs {
    /// What to do besides running the controller.
    #[command(subcommand)]
    pub command: Option<LeadCommand>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// The `lead` subcommands.
#[derive(Debug, Subcommand)]
pub enum LeadCommand {
    /// Every opted-in Service, its leader, since when, and problems (exit 1 if any)
    Status,
}

/// The controller's flags, with zen-lead's defaults (--qps 50 and --burst 100 are global).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Services reconciled at once
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

    /// Opted-in Services cached per namespace for mapping pod events (beyond it, the least
    /// recently used are read from the store at each pod event)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_cache_size_per_namespace: usize,

    /// Read the current leader pod through a cache kept fresh by the pod watch
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub enable_leader_pod_cache: bool,

    /// How long a cached leader pod is trusted
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub leader_pod_cache_ttl_seconds: u64,

    /// Fast-retry profile (failover-critical requests): attempts in all
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fast_retry_max_attempts: u32,

    /// Fast-retry profile: wait before the first retry
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub fast_retry_initial_delay_ms: u64,

    /// Fast-retry profile: longest wait between retries
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub fast_retry_max_delay_ms: u64,

    /// Reconcile every opted-in Service again this often
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub resync: Duration,

    /// Serve Prometheus metrics, /healthz and /readyz here
    #[arg(
        long,
        visible_alias = "metrics-bind-address",
        default_value = "127.0.0.1:8080",
        value_name = "ADDRESS:PORT"
    )]
    pub metrics_addr: SocketAddr,

    #[command(flatten)]
    pub election: ElectionArgs,
}

impl RunArgs {
    fn options(&self, global: &GlobalArgs, lease_namespace: &str) -> LeadOptions {
        let election = self
            .election
            .options(true, lead::LEASE_NAME, lease_namespace);
        LeadOptions {
            namespace: if global.all_namespaces {
                None
            } else {
                global.namespace.clone()
            },
            workers: self.workers,
            max_cache_size_per_namespace: self.max_cache_size_per_namespace,
            leader_pod_cache: self.enable_leader_pod_cache,
            leader_pod_cache_ttl: Duration::from_secs(self.leader_pod_cache_ttl_seconds),
            fast_retry: kubezen::cluster::RetryPolicy {
                attempts: self.fast_retry_max_attempts,
                initial: Duration::from_millis(self.fast_retry_initial_delay_ms),
                cap: Duration::from_millis(self.fast_retry_max_delay_ms),
                ..kubezen::cluster::RetryPolicy::fast()
            },
            resync: self.resync,
            metrics_addr: Some(self.metrics_addr),
            election,
        }
    }
}

/// Runs `lead`.
pub fn run(args: &LeadArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    super::runtime()?.block_on(async {
        let cluster = global.connect().await?;
        match args.command {
            Some(LeadCommand::Status) => show_status(&cluster, global).await,
            None => run_controller(cluster, &args.run, global).await,
        }
    })
}

async fn run_controller(
    cluster: kubezen::cluster::Cluster,
    args: &RunArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let options = args.options(global, cluster.namespace());
    let shutdown = CancellationToken::new();
    on_interrupt(shutdown.clone(), None)?;
    lead::run(cluster, &options, &shutdown)
        .await
        .map_err(|error| {
            let failure = Failure::new(error.to_string());
            match error {
                lead::LeadError::Metrics { .. } => {
                    failure.hint("choose another --metrics-addr, or port 0 for any free one")
                }
                _ => failure,
            }
        })?;
    // The start-up line and the closing summary are the core's log lines.
    Ok(ExitCode::from(EXIT_OK))
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct StatusRows(Vec<LeaderStatus>);

impl Tabular for StatusRows {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("NAMESPACE"),
            Column::new("SERVICE"),
            Column::new("LEADER"),
            Column::new("SINCE"),
            Column::new("READY").right(),
            Column::wide("LEADER-SERVICE"),
            Column::wide("ENDPOINTS").right(),
            Column::new("PROBLEMS"),
        ]);
        for row in &self.0 {
            table.push_row(vec![
                Cell::from(row.namespace.as_str()),
                Cell::from(row.service.as_str()),
                row.leader
                    .as_deref()
                    .map_or_else(|| Cell::toned("<none>", Tone::Bad), Cell::from),
                Cell::toned(row.since.as_deref().unwrap_or("-"), Tone::Muted),
                Cell::from(format!("{}/{}", row.ready_pods, row.pods)),
                Cell::from(row.leader_service.as_str()),
                Cell::from(row.endpoints.to_string()),
                if row.problems.is_empty() {
                    Cell::toned("-", Tone::Good)
                } else {
                    Cell::toned(row.problems.join("; "), Tone::Warning)
                },
            ]);
        }
        table
    }
}

async fn show_status(
    cluster: &kubezen::cluster::Cluster,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let namespace = (!global.all_namespaces).then(|| {
        global
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.namespace().to_owned())
    });
    let rows = lead::status(cluster, namespace.as_deref())
        .await
        .map_err(|error| Failure::new(error.to_string()))?;
    let troubled = rows.iter().any(|row| !row.problems.is_empty());
    if rows.is_empty() {
        Output::stderr(global.output).print_raw(&format!(
            "no Service in {} is annotated zen-lead.io/enabled=true\n",
            namespace.map_or_else(
                || "any namespace".to_owned(),
                |ns| format!("namespace {ns}")
            )
        ))?;
    }
    Output::stdout(global.output).print(&StatusRows(rows))?;
    Ok(ExitCode::from(if troubled {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }))
}
