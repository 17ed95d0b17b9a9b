//! A fixed-window rate limiter per key (device id or client address), in memory per
//! replica.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys beyond this many are dropped when their window has passed.
const PRUNE_AT: usize = 200_000;

/// Allows `limit` requests per key per `window`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// `limit` per `window` (0: unlimited).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether one more request of `key` is allowed now.
    pub fn allow(&self, key: &str) -> bool {
        if self.limit == 0 {
            return true;
        }
        let now = Instant::now();
        let Ok(mut counts) = self.counts.lock() else {
            return true;
        };
        if counts.len() >= PRUNE_AT {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        match counts.get_mut(key) {
            Some((start, count)) if now.duration_since(*start) < self.window => {
                if *count >= self.limit {
                    return false;
                }
                *count += 1;
                true
            }
            Some(slot) => {
                *slot = (now, 1);
                true
            }
            None => {
                counts.insert(key.to_owned(), (now, 1));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.allow("a"));
        assert!(limiter.allow("a"));
        assert!(!limiter.allow("a"));
        assert!(limiter.allow("b"));
    }
}
