//! A bounded in-memory map for values derived from immutable content.
//!
//! Services derive documents from stored upstream bodies (an npm packument with mirror
//! URLs, a PyPI page in both formats) and keep a record of the result in the metadata
//! store. A value computed from content named by its digest never goes stale, so a copy in
//! memory saves a metadata read on every hit; callers check the source digest they hold
//! against the one the value was derived from.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

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

#[cfg(test)]
mod tests {
    use super::Memo;

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
