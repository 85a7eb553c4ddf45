//! remote_write bodies (after snappy) turned into series: malformed
//! symbol references and label lists are errors, never panics; the
//! borrowing 1.0 decoder decodes whatever prost decodes, to the same
//! series.

#![no_main]

use danaus_prom::labels::PromSeries;
use danaus_prom::prompb::{v1, v2};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = v2::Request::decode(data) {
        let _ = PromSeries::from_v2(req);
    }
    let fast = danaus_prom::v1_decode::decode_v1(data);
    match v1::WriteRequest::decode(data) {
        Ok(req) => {
            let want = PromSeries::from_v1(req);
            let got = fast.expect("prost decoded it; so must decode_v1");
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.describe(), w.describe());
                assert_eq!(g.samples.len(), w.samples.len());
            }
        }
        // Leniency where prost is strict is harmless: skipped bytes.
        Err(_) => {}
    }
});
