//! A watch-backed object cache on moka: read-through gets, a TTL per kind, an LRU cap per
//! namespace, invalidation from watch events, optional warm-up, and hit/miss/eviction stats.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt as _};
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use serde::de::DeserializeOwned;

/// The zen-lead guide's cap: at most 1,000 objects per namespace, least recently used evicted.
pub const DEFAULT_PER_NAMESPACE_CAPACITY: u64 = 1000;
/// The zen-lead guide's leader-pod cache TTL: 30 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How an [`ObjectCache`] keeps its objects.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The TTL of kinds not in `ttl_by_kind`.
    pub default_ttl: Duration,
    /// TTLs by kind (`Pod`, `Service`...): fast-changing kinds short, stable ones long.
    pub ttl_by_kind: BTreeMap<String, Duration>,
    /// Objects kept per namespace; the least recently used go first.
    pub per_namespace_capacity: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        let ttl_by_kind = [
            ("Pod", DEFAULT_TTL),
            ("EndpointSlice", Duration::from_secs(10)),
            ("Service", Duration::from_secs(60)),
            ("ConfigMap", Duration::from_secs(300)),
            ("Secret", Duration::from_secs(300)),
        ]
        .into_iter()
        .map(|(kind, ttl)| (kind.to_owned(), ttl))
        .collect();
        Self {
            default_ttl: DEFAULT_TTL,
            ttl_by_kind,
            per_namespace_capacity: DEFAULT_PER_NAMESPACE_CAPACITY,
        }
    }
}

impl CacheOptions {
    /// The TTL of `kind`.
    #[must_use]
    pub fn ttl(&self, kind: &str) -> Duration {
        self.ttl_by_kind
            .get(kind)
            .copied()
            .unwrap_or(self.default_ttl)
    }
}

/// What a cache has seen; `hits / (hits + misses)` is its hit ratio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Gets answered from the cache.
    pub hits: u64,
    /// Gets that went to the API server.
    pub misses: u64,
    /// Objects dropped to keep a namespace under its cap.
    pub evictions: u64,
    /// Objects dropped because their TTL ran out.
    pub expirations: u64,
    /// Objects dropped or replaced because a watch said they changed or went away.
    pub invalidations: u64,
    /// Objects held now.
    pub size: u64,
    /// Namespaces with a cache of their own.
    pub namespaces: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
    expirations: Arc<AtomicU64>,
    invalidations: AtomicU64,
}

type Shard<K> = moka::sync::Cache<String, Arc<K>>;

/// A cache of one kind of object, keyed by namespace and name.
///
/// `get` reads through: a miss fetches the object (a 404 is a miss that caches nothing). Run
/// [`ObjectCache::watch`] to keep it fresh: changed objects are replaced, deleted ones dropped,
/// and with `warm` the first list fills it.
pub struct ObjectCache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    client: kube::Client,
    ttl: Duration,
    capacity: u64,
    shards: RwLock<HashMap<String, Shard<K>>>,
    counters: Counters,
}

impl<K> Debug for ObjectCache<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<K> ObjectCache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
{
    /// An empty cache of `K` objects read through `client`.
    #[must_use]
    pub fn new(client: kube::Client, options: &CacheOptions) -> Self {
        Self {
            client,
            ttl: options.ttl(&K::kind(&())),
            capacity: options.per_namespace_capacity.max(1),
            shards: RwLock::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// The object, from the cache or else from the API server; `None` when it does not exist.
    ///
    /// # Errors
    /// The API server's, on a miss.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<Arc<K>>, kube::Error> {
        if let Some(object) = self.peek(namespace, name) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(object));
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await? {
            Some(object) => {
                let object = Arc::new(object);
                self.shard(namespace)
                    .insert(name.to_owned(), Arc::clone(&object));
                Ok(Some(object))
            }
            None => Ok(None),
        }
    }

    /// The cached object, without going to the API server or counting a hit or miss.
    #[must_use]
    pub fn peek(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shards.get(namespace)?.get(name)
    }

    /// Puts an object in the cache (as a watch event does).
    pub fn insert(&self, object: K) {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        self.shard(&namespace).insert(name, Arc::new(object));
    }

    /// Replaces an object the cache holds (as a watch event does); one it does not hold stays
    /// out.
    pub fn update(&self, object: K) {
        self.refresh(object, false);
    }

    /// Restarts the TTL of every cached object, as a live watch that has seen no change to
    /// them confirms them; returns how many there are.
    pub fn renew_all(&self) -> usize {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut renewed = 0;
        for shard in shards.values() {
            let held: Vec<(Arc<String>, Arc<K>)> = shard.iter().collect();
            renewed += held.len();
            for (name, object) in held {
                shard.insert((*name).clone(), object);
            }
        }
        renewed
    }

    /// Drops an object from the cache.
    pub fn invalidate(&self, namespace: &str, name: &str) {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shard) = shards.get(namespace) {
            shard.invalidate(name);
        }
    }

    /// Lists `K` (in `namespace`, or everywhere) into the cache; returns how many objects came.
    ///
    /// # Errors
    /// The API server's.
    pub async fn warm(&self, namespace: Option<&str>) -> Result<usize, kube::Error> {
        let api: Api<K> = match namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let list = api.list(&kube::api::ListParams::default()).await?;
        let count = list.items.len();
        for object in list.items {
            self.insert(object);
        }
        Ok(count)
    }

    /// Follows a watch of `K` (in `namespace`, or everywhere) for ever, replacing changed
    /// objects and dropping deleted ones; the watch restarts by itself after errors (a dropped
    /// connection, 410 Gone), with kube's default backoff. With `warm`, objects of the initial
    /// list are cached too; without, only objects already cached are refreshed. Spawn it and
    /// abort the task to stop.
    pub async fn watch(self: Arc<Self>, namespace: Option<&str>, warm: bool) {
        use kube::runtime::WatchStreamExt as _;
        let api: Api<K> = match namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let events = watcher(api, watcher::Config::default()).default_backoff();
        let mut events = std::pin::pin!(events);
        // The objects of a (re-)list: after a 410 or a reconnect, whatever the list no longer
        // holds was deleted meanwhile and must go from the cache too.
        let mut listed: Option<std::collections::HashSet<(String, String)>> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(object)) => self.refresh(object, true),
                Ok(watcher::Event::InitApply(object)) => {
                    if let Some(listed) = listed.as_mut() {
                        listed.insert((object.namespace().unwrap_or_default(), object.name_any()));
                    }
                    self.refresh(object, warm);
                }
                Ok(watcher::Event::Delete(object)) => {
                    self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
                    self.invalidate(&object.namespace().unwrap_or_default(), &object.name_any());
                }
                Ok(watcher::Event::Init) => listed = Some(std::collections::HashSet::new()),
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        self.forget_unlisted(namespace, &listed);
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Drops cached objects (of `namespace`, or all) that a fresh list did not return: after a
    /// watch broke (a reconnect, 410 Gone, an API server restart) and listed again, an object
    /// deleted meanwhile is only absent from the list, with no deletion event.
    pub(crate) fn forget_unlisted(
        &self,
        namespace: Option<&str>,
        listed: &std::collections::HashSet<(String, String)>,
    ) {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (shard_namespace, shard) in shards.iter() {
            if namespace.is_some_and(|wanted| wanted != shard_namespace) {
                continue;
            }
            for (name, _) in shard {
                if !listed.contains(&(shard_namespace.clone(), (*name).clone())) {
                    self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
                    shard.invalidate(name.as_str());
                }
            }
        }
    }

    fn refresh(&self, object: K, insert_new: bool) {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        if self.peek(&namespace, &name).is_some() {
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
            self.shard(&namespace).insert(name, Arc::new(object));
        } else if insert_new {
            self.shard(&namespace).insert(name, Arc::new(object));
        }
    }

    /// Hits, misses, evictions, expirations and size so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let shards = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut size = 0;
        for shard in shards.values() {
            shard.run_pending_tasks();
            size += shard.entry_count();
        }
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            expirations: self.counters.expirations.load(Ordering::Relaxed),
            invalidations: self.counters.invalidations.load(Ordering::Relaxed),
            size,
            namespaces: shards.len() as u64,
        }
    }

    fn shard(&self, namespace: &str) -> Shard<K> {
        if let Some(shard) = self
            .shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(namespace)
        {
            return shard.clone();
        }
        let mut shards = self
            .shards
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        shards
            .entry(namespace.to_owned())
            .or_insert_with(|| {
                let evictions = Arc::clone(&self.counters.evictions);
                let expirations = Arc::clone(&self.counters.expirations);
                moka::sync::Cache::builder()
                    .max_capacity(self.capacity)
                    .eviction_policy(EvictionPolicy::lru())
                    .time_to_live(self.ttl)
                    .eviction_listener(move |_name, _object, cause| match cause {
                        RemovalCause::Size => {
                            evictions.fetch_add(1, Ordering::Relaxed);
                        }
                        RemovalCause::Expired => {
                            expirations.fetch_add(1, Ordering::Relaxed);
                        }
                        RemovalCause::Explicit | RemovalCause::Replaced => {}
                    })
                    .build()
            })
            .clone()
    }
}
