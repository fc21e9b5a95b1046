//! Random spread for the pauses between KV write retries.
//!
//! KV takes one write per second per key. When many isolates fail to write
//! the same key at the same moment (a user cut-off during a KV hiccup), a
//! fixed schedule makes them all retry together and collide again; a random
//! extra wait spreads them out. The randomness comes from `getrandom`
//! (`crypto.getRandomValues` in a Worker, through its `wasm_js` backend).

/// The longest a retry scheduled `base_ms` ahead may wait: half as long
/// again, so every pause stays above KV's one second per key and the whole
/// schedule stays bounded.
pub fn latest(base_ms: u32) -> u32 {
    base_ms + base_ms / 2
}

/// `base_ms` plus a share of `random`, within [`latest`].
pub fn spread(base_ms: u32, random: u32) -> u32 {
    base_ms + random % (latest(base_ms) - base_ms + 1)
}

/// The pause before a retry scheduled `base_ms` ahead. Without randomness
/// (never expected in a Worker) the schedule is kept as it is: still valid,
/// only not spread.
pub fn jittered(base_ms: u32) -> u32 {
    getrandom::u32().map_or(base_ms, |random| spread(base_ms, random))
}

/// Whether `pauses` are `schedule`'s pauses, in order, each within its
/// spread: what a store records for a write retried `schedule.len()` times.
/// For tests of the stores' recorded pauses.
pub fn within_schedule(pauses: &[u32], schedule: &[u32]) -> bool {
    pauses.len() == schedule.len()
        && pauses
            .iter()
            .zip(schedule)
            .all(|(&pause, &base)| (base..=latest(base)).contains(&pause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_never_shrinks_and_grows_by_at_most_half() {
        for base in [0, 1, 1000, 1100, 2200] {
            for random in [0, 1, 549, 550, 551, u32::MAX / 2, u32::MAX] {
                let pause = spread(base, random);
                assert!((base..=latest(base)).contains(&pause), "{base} {random}");
            }
        }
        assert_eq!(spread(1100, 0), 1100);
        assert_eq!(spread(1100, 550), 1650);
        assert_eq!(latest(2200), 3300);
    }

    #[test]
    fn isolates_do_not_retry_in_lockstep() {
        let pauses: std::collections::HashSet<u32> = (0..32).map(|_| jittered(1100)).collect();
        assert!(pauses.len() > 1, "32 draws gave one pause: {pauses:?}");
        assert!(pauses.iter().all(|p| (1100..=1650).contains(p)));
    }

    #[test]
    fn the_schedule_check_refuses_missing_early_and_late_pauses() {
        let schedule = [1100, 2200];
        assert!(within_schedule(&[], &[]));
        assert!(within_schedule(&[1100, 2200], &schedule));
        assert!(within_schedule(&[1650, 3300], &schedule));
        assert!(!within_schedule(&[1100], &schedule));
        assert!(!within_schedule(&[1099, 2200], &schedule));
        assert!(!within_schedule(&[1100, 3301], &schedule));
        assert!(!within_schedule(&[2200, 1100], &schedule));
    }
}
