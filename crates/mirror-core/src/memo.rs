//! Bounded in-memory maps that save a store read on every cached hit.
//!
//! - [`Memo`]: values derived from immutable content (an npm packument with mirror URLs, a
//!   PyPI page in both formats), which never go stale; callers check the source digest
//!   they hold against the one the value was derived from.
//! - [`Recent`]: reads of records another replica may change, reused for a short hold.
//! - [`BytesCache`]: byte strings within a byte budget, least recently used out first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Up to `capacity` values by key; when full, the map starts over empty (a burst of
/// distinct keys costs one metadata read each, as it would without the map).
#[derive(Debug)]
pub struct Memo<V> {
    capacity: usize,
    values: Mutex<HashMap<String, V>>,
}

impl<V: Clone> Memo<V> {
    /// An empty map holding at most `capacity` values.
    pub fn new(capacity: usize) -> Self {
        Memo {
            capacity,
            values: Mutex::new(HashMap::new()),
        }
    }

    /// The value kept for `key`, if any.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` for `key`, replacing what was there.
    pub fn insert(&self, key: &str, value: V) {
        let mut values = self.lock();
        if values.len() >= self.capacity && !values.contains_key(key) {
            values.clear();
        }
        if self.capacity > 0 {
            values.insert(key.to_owned(), value);
        }
    }

    /// Forgets the value for `key`.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Values read from a shared store, each reused for a short while after it was read.
///
/// A record that other processes may change (a hosted package, when several replicas share
/// one metadata store) cannot be remembered for good like a [`Memo`] value, but under load
/// the same record is read thousands of times a second; reusing a copy for up to `hold`
/// bounds how late another replica's change is seen. The owner must [`insert`] or
/// [`remove`] after its own writes, so this process always reads what it wrote.
///
/// [`insert`]: Recent::insert
/// [`remove`]: Recent::remove
#[derive(Debug)]
pub struct Recent<V> {
    hold: Duration,
    values: Memo<(Instant, V)>,
}

impl<V: Clone> Recent<V> {
    /// An empty map keeping at most `capacity` values, each for `hold` after it was kept.
    pub fn new(capacity: usize, hold: Duration) -> Self {
        Recent {
            hold,
            values: Memo::new(capacity),
        }
    }

    /// The value kept for `key`, unless it was kept more than `hold` ago.
    pub fn get(&self, key: &str) -> Option<V> {
        let (at, value) = self.values.get(key)?;
        (at.elapsed() < self.hold).then_some(value)
    }

    /// Keeps `value` for `key` from now on.
    pub fn insert(&self, key: &str, value: V) {
        self.values.insert(key, (Instant::now(), value));
    }

    /// Forgets the value for `key`.
    pub fn remove(&self, key: &str) {
        self.values.remove(key);
    }
}

/// Byte strings by key within a total budget, evicting the least recently used first (a
/// second-chance queue): the memory behind [`HotBlobs`](crate::HotBlobs) and the rendered
/// documents services keep per base URL.
#[derive(Debug)]
pub struct BytesCache<K> {
    budget: u64,
    state: Mutex<Held<K>>,
}

#[derive(Debug)]
struct Held<K> {
    entries: HashMap<K, HeldBytes>,
    /// Insertion order for eviction; an entry read since it was queued gets a second turn.
    queue: VecDeque<K>,
    bytes: u64,
}

#[derive(Debug)]
struct HeldBytes {
    bytes: bytes::Bytes,
    used: bool,
}

impl<K: Hash + Eq + Clone> BytesCache<K> {
    /// An empty cache holding at most `budget` bytes in all.
    pub fn new(budget: u64) -> Self {
        BytesCache {
            budget,
            state: Mutex::new(Held {
                entries: HashMap::new(),
                queue: VecDeque::new(),
                bytes: 0,
            }),
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// The bytes kept for `key`, marking them used.
    pub fn get(&self, key: &K) -> Option<bytes::Bytes> {
        let mut held = self.lock();
        let entry = held.entries.get_mut(key)?;
        entry.used = true;
        Some(entry.bytes.clone())
    }

    /// Keeps `bytes` for `key`, evicting entries not used since they were queued until
    /// they fit; bytes larger than the whole budget are not kept.
    pub fn insert(&self, key: K, bytes: bytes::Bytes) {
        let size = bytes.len() as u64;
        let mut held = self.lock();
        if size > self.budget || held.entries.contains_key(&key) {
            return;
        }
        while held.bytes + size > self.budget {
            let Some(victim) = held.queue.pop_front() else {
                break;
            };
            let second_chance = held
                .entries
                .get_mut(&victim)
                .is_some_and(|entry| std::mem::take(&mut entry.used));
            if second_chance {
                held.queue.push_back(victim);
            } else if let Some(evicted) = held.entries.remove(&victim) {
                held.bytes -= evicted.bytes.len() as u64;
            }
        }
        held.bytes += size;
        held.queue.push_back(key.clone());
        held.entries.insert(key, HeldBytes { bytes, used: false });
    }

    /// Forgets the bytes kept for `key`.
    pub fn remove(&self, key: &K) {
        let mut held = self.lock();
        if let Some(entry) = held.entries.remove(key) {
            held.bytes -= entry.bytes.len() as u64;
            held.queue.retain(|queued| queued != key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Memo, Recent};

    #[tokio::test(start_paused = true)]
    async fn recent_values_expire_after_their_hold() {
        let recent = Recent::new(4, Duration::from_secs(1));
        recent.insert("a", 1);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(recent.get("a"), Some(1));
        recent.insert("b", 2);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!((recent.get("a"), recent.get("b")), (None, Some(2)));
        recent.remove("b");
        assert_eq!(recent.get("b"), None);
    }

    #[test]
    fn keeps_values_up_to_its_capacity() {
        let memo = Memo::new(2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        memo.insert("b", 3);
        assert_eq!((memo.get("a"), memo.get("b")), (Some(1), Some(3)));
        memo.insert("c", 4);
        assert_eq!((memo.get("a"), memo.get("c")), (None, Some(4)));
        memo.remove("c");
        assert_eq!(memo.get("c"), None);
        let none = Memo::new(0);
        none.insert("a", 1);
        assert_eq!(none.get("a"), None);
    }
}
