//! Marks: decoder states an open column keeps at every [`MARK_EVERY`]-th
//! value, the newest two. A read of a column's recent values starts at a
//! mark instead of at the first value: an instant query over the last five
//! minutes of a 480-point open chunk decodes at most `2 × MARK_EVERY` plus
//! the points it needs, not the whole chunk. Two marks cost 48 bytes per
//! open column; sealed chunks keep none (their packed codings decode in
//! blocks).

/// Distance between marks, in values.
pub const MARK_EVERY: u32 = 32;

/// The decoder state before value `index`: `bit` is where its code
/// starts, `state` what the decoder carries over from earlier values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mark<S> {
    /// Index of the next value (0: no mark).
    pub index: u32,
    /// Bit position of that value's code.
    pub bit: u32,
    /// Decoder state.
    pub state: S,
}

/// The newest two marks of a column.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Marks<S> {
    newest: Mark<S>,
    older: Mark<S>,
}

impl<S: Copy> Marks<S> {
    /// Called before value `count` is written at bit `bit`: takes a mark
    /// when `count` is a positive multiple of [`MARK_EVERY`].
    #[inline]
    pub(crate) fn before_value(&mut self, count: u32, bit: usize, state: impl FnOnce() -> S) {
        if count == 0 || !count.is_multiple_of(MARK_EVERY) {
            return;
        }
        let Ok(bit) = u32::try_from(bit) else { return };
        self.older = self.newest;
        self.newest = Mark { index: count, bit, state: state() };
    }

    /// The marks held, newest first, at indices at most `len`.
    pub(crate) fn up_to(&self, len: usize) -> impl Iterator<Item = Mark<S>> + '_ {
        [self.newest, self.older].into_iter().filter(move |m| m.index > 0 && m.index as usize <= len)
    }

    /// The mark before value `index`, if held.
    pub(crate) fn at(&self, index: u32) -> Option<Mark<S>> {
        [self.newest, self.older].into_iter().find(|m| m.index == index && index > 0)
    }
}
