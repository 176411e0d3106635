//! Helpers for the crate's unit tests.

/// For random cases: a xorshift generator from `state` whose every call
/// gives a number below its argument.
pub(crate) fn random_below(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |below| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    }
}
