//! The local-port allocator: deterministic, and never one port for two entries.
//!
//! The order, which is part of the contract:
//!
//! 1. Enabled entries are taken by name (byte order), whatever order the files list them in.
//! 2. First pass: each entry that asks for a `localPort` gets it when no entry before it holds
//!    it and the port is free on this machine.
//! 3. Second pass, by name again: an entry whose port was taken (by an earlier entry, or by
//!    another program) gets the first free port above the one it asked for, up to 65535, then
//!    the first free port of `localPorts`; an entry that asked for nothing gets the first free
//!    port of `localPorts`.
//!
//! So an entry that asked for a free port never loses it to a conflicting one, nor to an entry
//! added later unless that one asks for the same port and sorts first; automatic ports follow
//! name order. The same configuration on the same machine gives the same ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::config::Config;

/// Whether local ports are free to listen on.
pub trait PortCheck {
    /// Whether nothing listens on `port`.
    fn is_free(&mut self, port: u16) -> bool;

    /// Forgets what is known of `port` (it was just bound, or released).
    fn forget(&mut self, _port: u16) {}
}

/// Asks the operating system: a port is free when a listener can be bound to it on the
/// loopback address the forwards listen on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemPorts;

impl PortCheck for SystemPorts {
    fn is_free(&mut self, port: u16) -> bool {
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
    }
}

/// Every port free: for planning without looking at this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeFree;

impl PortCheck for AssumeFree {
    fn is_free(&mut self, _port: u16) -> bool {
        true
    }
}

/// Another check's answers, trusted for a TTL. A lookup is an index into a table of 65,536
/// words and one clock read.
#[derive(Debug)]
pub struct CachedPorts<C> {
    inner: C,
    ttl: Duration,
    epoch: Instant,
    /// Per port: 0 = unknown; otherwise (nanoseconds since `epoch` + 1) << 1 | free.
    answers: Vec<u64>,
}

impl<C: PortCheck> CachedPorts<C> {
    /// `inner`'s answers, each trusted for `ttl`.
    #[must_use]
    pub fn new(inner: C, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            epoch: Instant::now(),
            answers: vec![0; usize::from(u16::MAX) + 1],
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX >> 2)
    }
}

impl<C: PortCheck> PortCheck for CachedPorts<C> {
    fn is_free(&mut self, port: u16) -> bool {
        let now = self.now();
        let answer = self.answers[usize::from(port)];
        if answer != 0 {
            let checked = (answer >> 1) - 1;
            if u128::from(now - checked.min(now)) < self.ttl.as_nanos() {
                return answer & 1 == 1;
            }
        }
        let free = self.inner.is_free(port);
        self.answers[usize::from(port)] = ((now + 1) << 1) | u64::from(free);
        free
    }

    fn forget(&mut self, port: u16) {
        self.answers[usize::from(port)] = 0;
        self.inner.forget(port);
    }
}

/// Why an entry has the port it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reason {
    /// The port it asked for.
    Requested,
    /// It asked for nothing: the first free port of `localPorts`.
    Automatic,
    /// Its port went to an entry that sorts before it.
    Conflict {
        /// That entry.
        with: String,
    },
    /// Its port was in use on this machine.
    InUse,
    /// No free port was left.
    Exhausted,
}

/// One entry's local port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The entry.
    pub name: String,
    /// What it asked for.
    pub requested: Option<u16>,
    /// What it got; `None` when every port was taken.
    pub port: Option<u16>,
    /// Why.
    pub reason: Reason,
}

/// The local ports of a configuration's enabled entries, ordered by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// One per enabled entry.
    pub assignments: Vec<Assignment>,
}

impl Allocation {
    /// The port given to entry `name`.
    #[must_use]
    pub fn port(&self, name: &str) -> Option<u16> {
        self.assignments
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.assignments[i].port)
    }
}

/// The set of ports handed out: a bit per port.
#[derive(Debug, Clone)]
pub struct Claimed {
    bits: Vec<u64>,
}

impl Default for Claimed {
    fn default() -> Self {
        Self {
            bits: vec![0; 1024],
        }
    }
}

impl Claimed {
    /// Whether `port` is handed out.
    #[must_use]
    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Hands `port` out; false when it already was.
    pub fn insert(&mut self, port: u16) -> bool {
        let had = self.contains(port);
        self.bits[usize::from(port) / 64] |= 1 << (port % 64);
        !had
    }

    /// Takes `port` back.
    pub fn remove(&mut self, port: u16) {
        self.bits[usize::from(port) / 64] &= !(1 << (port % 64));
    }
}

/// The first port of `ports` not claimed and free; claims it.
pub fn first_free(
    ports: impl IntoIterator<Item = u16>,
    claimed: &mut Claimed,
    check: &mut impl PortCheck,
) -> Option<u16> {
    let port = ports
        .into_iter()
        .find(|&port| port != 0 && !claimed.contains(port) && check.is_free(port))?;
    claimed.insert(port);
    Some(port)
}

/// Where an entry whose own port is taken looks: above its port, then the automatic range.
pub fn fallback_ports(requested: Option<u16>, range: (u16, u16)) -> impl Iterator<Item = u16> {
    requested
        .filter(|&port| port < u16::MAX)
        .map(|port| port + 1..=u16::MAX)
        .into_iter()
        .flatten()
        .chain(range.0..=range.1)
}

/// Allocates local ports to `config`'s enabled entries in the documented order (see the
/// module's documentation), asking `check` whether ports are free and never handing out a
/// port in `claimed` (which ends holding every port handed out).
pub fn allocate_with(
    config: &Config,
    check: &mut impl PortCheck,
    claimed: &mut Claimed,
) -> Allocation {
    // The entries are ordered by name by the configuration.
    let enabled: Vec<_> = config.entries.iter().filter(|e| !e.disabled).collect();
    let mut holder: Vec<Option<usize>> = vec![None; enabled.len()];
    let mut assignments: Vec<Assignment> = enabled
        .iter()
        .map(|entry| Assignment {
            name: entry.name.clone(),
            requested: entry.local_port,
            port: None,
            reason: Reason::Automatic,
        })
        .collect();
    let mut owner_of_port = std::collections::HashMap::new();
    for (index, entry) in enabled.iter().enumerate() {
        let Some(port) = entry.local_port else {
            continue;
        };
        if let Some(&owner) = owner_of_port.get(&port) {
            holder[index] = Some(owner);
            continue;
        }
        if !claimed.contains(port) && check.is_free(port) {
            claimed.insert(port);
            owner_of_port.insert(port, index);
            assignments[index].port = Some(port);
            assignments[index].reason = Reason::Requested;
        } else {
            assignments[index].reason = Reason::InUse;
        }
    }
    let range = config.settings.local_ports;
    for index in 0..enabled.len() {
        if assignments[index].port.is_some() {
            continue;
        }
        let requested = assignments[index].requested;
        if let Some(owner) = holder[index] {
            assignments[index].reason = Reason::Conflict {
                with: enabled[owner].name.clone(),
            };
        }
        assignments[index].port = first_free(fallback_ports(requested, range), claimed, check);
        if assignments[index].port.is_none() {
            assignments[index].reason = Reason::Exhausted;
        }
    }
    Allocation { assignments }
}

/// Allocates local ports to `config`'s enabled entries, checking this machine's ports through
/// a cache with the configuration's TTL.
#[must_use]
pub fn allocate(config: &Config) -> Allocation {
    let mut check = CachedPorts::new(SystemPorts, config.settings.port_check_ttl);
    allocate_with(config, &mut check, &mut Claimed::default())
}

#[cfg(test)]
mod tests {
    use super::super::config::{Layer, merge};
    use super::*;
    use std::collections::HashSet;
    use std::fmt::Write as _;

    struct Busy(HashSet<u16>, usize);

    impl PortCheck for Busy {
        fn is_free(&mut self, port: u16) -> bool {
            self.1 += 1;
            !self.0.contains(&port)
        }
    }

    fn config(entries: &str) -> Config {
        let text = format!("localPorts: 50000-50009\nportForwards:\n{entries}");
        merge(&[Layer::defaults(), Layer::text("test.yaml", &text)]).unwrap()
    }

    fn ports(allocation: &Allocation) -> Vec<(&str, Option<u16>)> {
        allocation
            .assignments
            .iter()
            .map(|a| (a.name.as_str(), a.port))
            .collect()
    }

    #[test]
    fn conflicts_go_to_the_entry_that_sorts_first_and_never_share_a_port() {
        // kportforward gives both 8080 or depends on map order; here `a` keeps it whatever
        // the file's order, and `b` moves up past `c`'s port, which `c` keeps.
        let config = config(
            "  c: {target: svc/c, targetPort: 80, localPort: 8081}\n  b: {target: svc/b, targetPort: 80, localPort: 8080}\n  a: {target: svc/a, targetPort: 80, localPort: 8080}\n  d: {target: svc/d, targetPort: 80}\n  e: {target: svc/e, targetPort: 80, disabled: true}\n",
        );
        let allocation = allocate_with(&config, &mut AssumeFree, &mut Claimed::default());
        assert_eq!(
            ports(&allocation),
            [
                ("a", Some(8080)),
                ("b", Some(8082)),
                ("c", Some(8081)),
                ("d", Some(50000))
            ]
        );
        assert_eq!(allocation.assignments[0].reason, Reason::Requested);
        assert_eq!(
            allocation.assignments[1].reason,
            Reason::Conflict { with: "a".into() }
        );
        assert_eq!(allocation.assignments[3].reason, Reason::Automatic);
        assert_eq!(allocation.port("c"), Some(8081));
        assert_eq!(allocation.port("e"), None);
    }

    #[test]
    fn ports_in_use_are_skipped_and_the_order_is_stable() {
        let config = config(
            "  web: {target: svc/web, targetPort: 80, localPort: 8080}\n  auto1: {target: svc/x, targetPort: 80}\n  auto2: {target: svc/y, targetPort: 80}\n",
        );
        let mut busy = Busy([8080, 8081, 50000].into(), 0);
        let first = allocate_with(&config, &mut busy, &mut Claimed::default());
        assert_eq!(
            ports(&first),
            [
                ("auto1", Some(50001)),
                ("auto2", Some(50002)),
                ("web", Some(8082))
            ]
        );
        assert_eq!(first.assignments[2].reason, Reason::InUse);
        let again = allocate_with(&config, &mut busy, &mut Claimed::default());
        assert_eq!(first, again);
    }

    #[test]
    fn an_exhausted_range_is_said_and_no_port_is_given_twice() {
        let mut entries = String::new();
        for i in 0..12 {
            writeln!(entries, "  e{i:02}: {{target: svc/e, targetPort: 80}}").unwrap();
        }
        entries.push_str("  top: {target: svc/t, targetPort: 80, localPort: 65535}\n  top2: {target: svc/t, targetPort: 80, localPort: 65535}\n");
        let config = config(&entries);
        let allocation = allocate_with(&config, &mut AssumeFree, &mut Claimed::default());
        let given: Vec<u16> = allocation
            .assignments
            .iter()
            .filter_map(|a| a.port)
            .collect();
        let unique: HashSet<u16> = given.iter().copied().collect();
        assert_eq!(given.len(), unique.len());
        assert_eq!(allocation.port("top"), Some(65535));
        // top2 sorts last: the ten automatic ports are gone.
        assert_eq!(
            allocation.assignments.last().unwrap().reason,
            Reason::Exhausted
        );
        let exhausted = allocation
            .assignments
            .iter()
            .filter(|a| a.reason == Reason::Exhausted)
            .count();
        assert_eq!(exhausted, 3);
    }

    #[test]
    fn the_cache_answers_within_its_ttl_and_asks_again_after() {
        let mut cached = CachedPorts::new(Busy([7000].into(), 0), Duration::from_millis(50));
        assert!(!cached.is_free(7000));
        assert!(!cached.is_free(7000));
        assert!(cached.is_free(7001));
        assert_eq!(cached.inner.1, 2);
        cached.forget(7000);
        assert!(!cached.is_free(7000));
        assert_eq!(cached.inner.1, 3);
        std::thread::sleep(Duration::from_millis(60));
        cached.inner.0.clear();
        assert!(cached.is_free(7000));
        assert_eq!(cached.inner.1, 4);
    }

    #[test]
    fn the_system_check_sees_a_listener() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!SystemPorts.is_free(port));
        drop(listener);
        assert!(SystemPorts.is_free(port));
    }

    #[test]
    fn claimed_ports_are_a_set() {
        let mut claimed = Claimed::default();
        assert!(claimed.insert(65535));
        assert!(!claimed.insert(65535));
        assert!(claimed.contains(65535) && !claimed.contains(65534));
        claimed.remove(65535);
        assert!(!claimed.contains(65535));
    }
}
