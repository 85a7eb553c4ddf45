//! Chunk decoding on arbitrary bytes (a corrupt store or log): header,
//! point iteration and the batch double kernel must return errors, never
//! panic or loop, and the two decoders must agree when both succeed.

#![no_main]

use danaus_codec::Chunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk::from_bytes(data.to_vec());
    let Ok(header) = chunk.header() else { return };
    let points = chunk.points();
    if let Ok(mut it) = chunk.iter() {
        let (mut times, mut values) = (Vec::new(), Vec::new());
        if it.read_doubles(&mut times, &mut values).is_ok() {
            if let Ok(points) = &points {
                assert_eq!(points.len(), times.len());
                for (p, t) in points.iter().zip(&times) {
                    assert_eq!(p.end_time, *t);
                }
            }
        }
    }
    if let Ok(points) = points {
        assert!(points.len() <= header.count as usize + 1);
    }
});
