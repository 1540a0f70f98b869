//! Bounded waiting: throughput-based stall detection, the overall deadline, and telling
//! an unreachable host from a transient failure.

use std::io;
use std::time::{Duration, Instant};

use super::{TransportError, TransportOptions};

/// Measures a transfer's throughput over windows of `window`.
pub(super) struct Pace {
    rate: u64,
    window: Duration,
    window_start: Instant,
    window_bytes: u64,
    started: Instant,
    deadline: Duration,
}

impl Pace {
    pub(super) fn new(options: &TransportOptions, started: Instant) -> Pace {
        Pace {
            rate: options.stall_rate,
            window: options.stall_window,
            window_start: Instant::now(),
            window_bytes: 0,
            started,
            deadline: options.deadline,
        }
    }

    /// Counts `n` new bytes; an error when a whole window went by too slowly or the
    /// deadline passed.
    pub(super) fn advance(
        &mut self,
        n: u64,
        url: &str,
        attempts: u32,
    ) -> Result<(), TransportError> {
        self.window_bytes += n;
        if self.started.elapsed() > self.deadline {
            return Err(TransportError::Deadline {
                url: url.to_string(),
                deadline: self.deadline,
            });
        }
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window {
            let needed = (self.rate as f64 * elapsed.as_secs_f64()) as u64;
            if self.window_bytes < needed {
                return Err(self.stalled(url, attempts));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(())
    }

    pub(super) fn stalled(&self, url: &str, attempts: u32) -> TransportError {
        TransportError::Stalled {
            url: url.to_string(),
            rate: self.rate,
            window: self.window,
            attempts,
        }
    }
}

/// Why a connection error means the host cannot be reached at all, if it does.
pub(super) fn unreachable_reason(chain: &str) -> Option<&'static str> {
    let lower = chain.to_ascii_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        Some("its name does not resolve")
    } else if lower.contains("connection refused") {
        Some("it refuses connections")
    } else {
        None
    }
}

/// Whether a body read ended because no byte came within the read timeout.
pub(super) fn is_timeout(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|e| e.is_timeout())
        {
            return true;
        }
        source = cause.source();
    }
    false
}
