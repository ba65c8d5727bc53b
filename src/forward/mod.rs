//! Forward: many port-forwards supervised at once, natively through the `kube` client, without
//! ever handing one local port to two targets.
//!
//! kportforward runs a `kubectl port-forward` process per service; its conflict resolution can
//! give two services the same local port and depends on map order. Here:
//!
//! - [`config`](mod@config): the configuration, embedded defaults merged field by field with the
//!   user's file and `-f` files, every error naming its file, entry and field.
//! - [`alloc`](mod@alloc): the deterministic local-port allocator and its cached availability
//!   checks.
//! - [`supervisor`](mod@supervisor): a task per entry: a listener on its port, a ready pod
//!   behind it, a port-forward per connection, reconnects with exponential backoff.
//!
//! ```
//! use kubezen::forward::{self, Layer};
//! let config = forward::merge(&[
//!     Layer::defaults(),
//!     Layer::text("mine.yaml", "portForwards:\n  api: {target: svc/api, targetPort: 80, localPort: 8080}\n"),
//! ])?;
//! let plan = forward::allocate_with(&config, &mut forward::AssumeFree, &mut Default::default());
//! assert_eq!(plan.port("api"), Some(8080));
//! # Ok::<(), kubezen::forward::ConfigError>(())
//! ```

pub mod alloc;
pub mod config;
pub mod supervisor;

pub use alloc::{
    Allocation, Assignment, AssumeFree, CachedPorts, Claimed, PortCheck, Reason, SystemPorts,
    allocate, allocate_with,
};
pub use config::{
    Config, ConfigError, Entry, EntryType, Layer, PortRef, Settings, Target, TargetKind, layers,
    load, merge, user_config_path,
};
pub use supervisor::{ForwardError, State, Status, SuperviseOptions, Supervisor};
