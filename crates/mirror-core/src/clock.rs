//! Wall-clock time that follows tokio's clock, so TTL tests can use a paused clock.
//!
//! Cache entries store when they were fetched as Unix time, which must survive restarts, so
//! `std::time::SystemTime` is the natural choice; but a paused tokio clock cannot move it.
//! [`Clock`] anchors a wall-clock reading once and then advances it by tokio's monotonic
//! clock: real time in production, virtual time under `tokio::time::pause`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A source of wall-clock time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_wall: SystemTime,
    anchor_mono: Instant,
}

impl Clock {
    /// A clock anchored at the current time.
    pub fn new() -> Self {
        Clock {
            anchor_wall: SystemTime::now(),
            anchor_mono: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        self.anchor_wall + self.anchor_mono.elapsed()
    }

    /// The current time as milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> u64 {
        let since_epoch = self
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
