//! Marks: decoder states an open column keeps at every [`MARK_EVERY`]-th
//! value, the newest two. A read of a column's recent values starts at a
//! mark instead of at the first value: an instant query over the last five
//! minutes of a 480-point open chunk decodes at most `2 × MARK_EVERY` plus
//! the points it needs, not the whole chunk. Two marks cost 40 bytes per
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

/// The newest two marks of a column, in the slot of their index's parity
/// (`index / MARK_EVERY % 2`). Indices are not stored: a column with
/// `count` values took its marks at every multiple of [`MARK_EVERY`]
/// below `count`, so they are the two largest (40 bytes in all for a
/// 16-byte state).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marks<S> {
    /// Bit positions; `u32::MAX` for a slot without a mark.
    bits: [u32; 2],
    states: [S; 2],
}

impl<S: Copy + Default> Default for Marks<S> {
    fn default() -> Self {
        Self { bits: [u32::MAX; 2], states: [S::default(); 2] }
    }
}

impl<S: Copy> Marks<S> {
    /// Called before value `count` is written at bit `bit`: takes a mark
    /// when `count` is a positive multiple of [`MARK_EVERY`].
    #[inline]
    pub(crate) fn before_value(&mut self, count: u32, bit: usize, state: impl FnOnce() -> S) {
        if count == 0 || !count.is_multiple_of(MARK_EVERY) {
            return;
        }
        let slot = (count / MARK_EVERY % 2) as usize;
        // A column past 4 Gbit keeps no mark there (never, in practice).
        self.bits[slot] = u32::try_from(bit).unwrap_or(u32::MAX);
        self.states[slot] = state();
    }

    /// The mark before value `index` of a column of `count` values, if
    /// held.
    pub(crate) fn at(&self, index: u32, count: u32) -> Option<Mark<S>> {
        let newest = count.saturating_sub(1) / MARK_EVERY * MARK_EVERY;
        if index == 0 || !index.is_multiple_of(MARK_EVERY) || index > newest || newest - index > MARK_EVERY {
            return None;
        }
        let slot = (index / MARK_EVERY % 2) as usize;
        (self.bits[slot] != u32::MAX).then(|| Mark { index, bit: self.bits[slot], state: self.states[slot] })
    }

    /// The marks held at indices at most `len`, of a column of `count`
    /// values, newest first.
    pub(crate) fn up_to(&self, len: usize, count: u32) -> impl Iterator<Item = Mark<S>> + '_ {
        let newest = count.saturating_sub(1) / MARK_EVERY * MARK_EVERY;
        [newest, newest.saturating_sub(MARK_EVERY)]
            .into_iter()
            .filter_map(move |i| self.at(i, count))
            .filter(move |m| m.index as usize <= len)
    }
}
