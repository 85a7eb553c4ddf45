//! # danaus-codec
//!
//! Compressed, append-only chunk encodings for a leaf's in-memory store and
//! its long-term store. A chunk holds the points of one series as columns:
//!
//! * times: delta-of-delta with a prefix code ([`int`]) in a per-chunk unit
//!   of `10^k` ns ([`time`]), one bit per point when scrapes are regular;
//! * doubles: decimal mantissas as delta-of-deltas while values are short
//!   decimals, else Gorilla XOR ([`double`], [`float`]); bit-exact for NaN,
//!   ±Inf and −0.0;
//! * int64: the same delta-of-delta code as times, zigzag-mapped;
//! * bools: run lengths ([`boolean`]); strings: a per-chunk dictionary
//!   ([`string`]); distributions: bucket counts delta-coded against the
//!   previous point ([`dist`]); tuples: one column per element;
//! * start times: one bit when unchanged or equal to the previous end.
//!
//! Data flow: the leaf pushes points into a [`ChunkBuilder`]; when the chunk
//! is full or old it calls [`ChunkBuilder::finish_packed`], which re-codes
//! integer and decimal columns in their smallest form ([`packed`]: deltas
//! or delta-of-deltas over the deltas' common divisor, in patched-PFOR
//! blocks), and keeps the immutable [`Chunk`] bytes, which are also what
//! RocksDB stores. Open columns keep the decoder state at every 32nd value
//! ([`mark`]), so [`ChunkBuilder::read_doubles_in`] reads an open chunk's
//! recent points in place without decoding it from the start. Decoding never
//! panics on corrupt input: every decoder returns [`Error`].

pub mod bits;
pub mod boolean;
mod chunk;
pub mod column;
pub mod dist;
pub mod double;
mod error;
pub mod float;
pub mod int;
pub mod mark;
pub mod packed;
pub mod string;
pub mod time;
pub mod varint;

pub use chunk::{get_value_type, put_value_type, retain_range, Chunk, ChunkBuilder, ChunkHeader, ChunkIter};
pub use error::{Error, Result};

/// Asks for the cache line at `p`: a hint with no effect on what the
/// program computes, for code that knows which memory it will read next.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
