//! The core of kubectl-zen.
//!
//! One library does the work; two faces drive it: the `kubectl zen` plugin (the
//! `kubectl-plugin` crate) and the `kubezen` Python module (the `python` crate). The core knows
//! nothing of either: each capability is a module here with a small public API, and the faces
//! add only argument parsing and presentation.
//!
//! - [`bench`](mod@bench): API servers, HTTP endpoints and the core's hot paths measured and judged.
//! - [`cel`]: a KRO-compatible, cached CEL engine.
//! - [`cluster`]: the client every capability shares: kubeconfig, rate limit, retries, cache.
//! - [`forward`]: many port-forwards supervised, one local port per target, reconnected.
//! - [`graph`]: KRO resource graphs, parsed, validated, ordered and measured offline.
//! - [`install`]: the manifests that run a controller in the cluster, applied and removed.
//! - [`metrics`]: the Prometheus and health endpoint of long-running commands.
//! - [`quantity`]: Kubernetes resource quantities, read and written.
//! - [`reconcile`]: KRO's runtime: render a graph instance and apply it in dependency order.
//! - [`tune`]: right-size workloads and controllers from measured usage; lint their specs.
//! - [`sim`]: zen-sim, a Kubernetes-API-compatible server for tests, demos and notebooks.
//! - [`version`]: what build this is.
//! - [`table`]: the tabular form every result can take, rendered as text by the plugin.

pub mod bench;
pub mod cel;
pub mod cluster;
pub mod forward;
pub mod graph;
pub mod install;
pub mod lead;
pub mod metrics;
pub mod quantity;
pub mod reconcile;
pub mod sim;
mod structural;
pub mod table;
pub mod tune;
pub mod version;

pub use table::{Cell, Column, Table, Tabular, Tone};
pub use version::VersionInfo;
