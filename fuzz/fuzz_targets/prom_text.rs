//! The Prometheus text and OpenMetrics parsers on arbitrary input (what a
//! scraped target may send): errors, never panics.

#![no_main]

use danaus_prom::text::{parse, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Prometheus, Format::OpenMetrics] {
        if let Ok(e) = parse(text, format) {
            for s in &e.samples {
                assert!(!s.name.is_empty());
                let _ = e.family_of(&s.name);
            }
        }
    }
});
