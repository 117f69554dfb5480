//! Claims on documents: one document is never exported by two tasks of this daemon at
//! once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// (doc kind, source id) being worked on, with what wakes the tasks waiting for it.
#[derive(Default)]
pub struct Claims {
    busy: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl Claims {
    /// Claims a document for this task, waiting up to `wait` while another task works on
    /// it (copies of one document submitted together then follow each other within
    /// milliseconds instead of going back to the queue); None if it stayed taken.
    pub async fn claim(self: &Arc<Self>, kind: &str, source: &str, wait: Duration) -> Option<Claim> {
        let key = (kind.to_owned(), source.to_owned());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let holder = match self.busy.lock().unwrap().entry(key.clone()) {
                Entry::Vacant(v) => {
                    v.insert(Arc::new(Notify::new()));
                    return Some(Claim { claims: self.clone(), key });
                }
                Entry::Occupied(o) => o.get().clone(),
            };
            let released = holder.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            // Released between the look and the registration: look again.
            if !self.busy.lock().unwrap().get(&key).is_some_and(|n| Arc::ptr_eq(n, &holder)) {
                continue;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
    }
}

/// A document claimed by one task; released (and its waiters woken) when dropped.
pub struct Claim {
    claims: Arc<Claims>,
    key: (String, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(waiting) = self.claims.busy.lock().unwrap().remove(&self.key) {
            waiting.notify_waiters();
        }
    }
}
