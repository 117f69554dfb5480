//! Faults tests inject into a running daemon; built only for tests (the `testing` feature,
//! which the test targets enable), never into the shipped daemon.

use std::collections::HashMap;
use std::sync::Mutex;

/// Test hook: panic in `stage` the next `times` times it sees document `source_id`.
#[derive(Default)]
pub struct StageFaults {
    panics: Mutex<HashMap<(String, String), u32>>,
}

impl StageFaults {
    pub fn panic_on(&self, stage: &str, source_id: &str, times: u32) {
        self.panics.lock().unwrap().insert((stage.to_owned(), source_id.to_owned()), times);
    }

    pub(super) fn should_panic(&self, stage: &str, source_id: &str) -> bool {
        let mut p = self.panics.lock().unwrap();
        match p.get_mut(&(stage.to_owned(), source_id.to_owned())) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}
