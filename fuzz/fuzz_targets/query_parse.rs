//! The query parser on arbitrary input: it must never panic, its errors
//! must point inside the text, and whatever parses must print back to text
//! that parses to the same query.

#![no_main]

use danaus_query::syntax::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(q) => {
            let printed = q.to_string();
            let again = parse(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
            assert_eq!(again, q, "{text:?} printed as {printed:?}");
        }
        Err(e) => {
            assert!(e.span.start <= text.len() && e.span.end <= text.len() + 1, "{e:?} outside {text:?}");
            let _ = e.render(text);
        }
    }
});
