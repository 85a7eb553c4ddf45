//! remote_write 2.0 bodies (after snappy) turned into series: malformed
//! symbol references and label lists are errors, never panics.

#![no_main]

use danaus_prom::labels::PromSeries;
use danaus_prom::prompb::{v1, v2};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = v2::Request::decode(data) {
        let _ = PromSeries::from_v2(req);
    }
    if let Ok(req) = v1::WriteRequest::decode(data) {
        for s in PromSeries::from_v1(req) {
            let _ = s.describe();
        }
    }
});
