//! Simulated time: scaled delays, wall-clock mapping and seeded randomness.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tokio::time::Instant;

/// Maps simulator instants to wall-clock time and scales real-world delays.
#[derive(Clone, Debug)]
pub struct Clock {
    pub start_instant: Instant,
    pub start_wall: DateTime<Utc>,
    pub scale: f64,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        Clock {
            start_instant: Instant::now(),
            start_wall: Utc::now(),
            scale,
        }
    }

    /// A real-world delay (seconds) multiplied by the time scale.
    pub fn scaled(&self, real_secs: f64) -> Duration {
        let s = real_secs * self.scale;
        if !s.is_finite() || s <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(s.min(1.0e9))
        }
    }

    /// Wall-clock time of a simulator instant.
    pub fn wall(&self, t: Instant) -> DateTime<Utc> {
        let d = t.saturating_duration_since(self.start_instant);
        self.start_wall + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
    }

    /// Kubernetes timestamp (RFC 3339, second precision, `Z`).
    pub fn k8s_time(&self, t: Instant) -> String {
        self.wall(t).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Focus API timestamp (RFC 3339 with milliseconds).
    pub fn api_time(&self, t: Instant) -> String {
        self.wall(t).to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

/// Parse a Focus time `yymmddHHMMSS` (UTC): a real calendar date, seconds 00-59 (no leap
/// second). `FocusTime` in `schemas/focus-server.openapi.yaml` has the same rules as a pattern.
pub fn parse_focus_time(s: &str) -> Option<NaiveDateTime> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) || &s[10..] > "59" {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%y%m%d%H%M%S").ok()
}

/// Format a time as `yymmddHHMMSS`.
pub fn format_focus_time(t: &NaiveDateTime) -> String {
    t.format("%y%m%d%H%M%S").to_string()
}

/// Uniform draw in [lo, hi] seconds.
pub fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    rng.random_range(lo..=hi)
}

/// Longest consumer readiness drawn by default. The sources say "usually 1-5 s, up to 30 s" and
/// the reference test polls for up to 30 s: a tail reaching the very limit would make that test
/// fail by the poll's own granularity, on the real system as here, so the default tail stops
/// short of it. Slower consumers are a fault (`consumer_delay_s`).
pub const CONSUMER_TAIL_MAX_SECS: f64 = 25.0;

/// Consumer readiness delay in real-world seconds: 85% uniform 1-5 s, 15% uniform 5-25 s.
pub fn consumer_delay_secs(rng: &mut StdRng) -> f64 {
    let p: f64 = rng.random();
    let d = if p < 0.85 {
        uniform(rng, 1.0, 5.0)
    } else {
        uniform(rng, 5.0, CONSUMER_TAIL_MAX_SECS)
    };
    d.clamp(1.0, CONSUMER_TAIL_MAX_SECS)
}

/// A child RNG seeded from a parent draw.
pub fn child_rng(rng: &mut StdRng) -> StdRng {
    StdRng::seed_from_u64(rng.random())
}

/// Random lowercase suffix like Kubernetes' generateName (consonants and digits excluded: letters only).
pub fn k8s_suffix(rng: &mut StdRng, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz";
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Random UUID (v4 layout) from the given RNG.
pub fn uuid(rng: &mut StdRng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Random lowercase hex string of `n` chars.
pub fn hex(rng: &mut StdRng, n: usize) -> String {
    const H: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| H[rng.random_range(0..16)] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_times() {
        for ok in [
            "251021120000",
            "240229235959",
            "000229000000",
            "991231235959",
            "250131000000",
            "251130000000",
        ] {
            assert!(parse_focus_time(ok).is_some(), "{ok}");
        }
        for bad in [
            "000000000000",
            "250229000000",
            "251131000000",
            "251021120060",
            "251021240000",
            "251021126000",
            "251321000000",
            "25102112000",
            "2510211200000",
            "25102112000a",
            "２５１０２１１２００００",
        ] {
            assert!(parse_focus_time(bad).is_none(), "{bad}");
        }
    }
}
