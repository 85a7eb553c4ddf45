//! `danausctl zone`: the zone table as the range assigner has it.

use std::fmt::Write as _;

use serde_json::Value;

/// Bytes as text: printable ASCII as is, the rest as `\xNN`.
fn escape(bytes: &[Value]) -> String {
    let mut s = String::new();
    for b in bytes {
        let b = b.as_u64().unwrap_or(0) as u8;
        if b.is_ascii_graphic() || b == b' ' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// Renders the zone table (its JSON form, as `AssignerService.Watch` sends
/// it) for people: version, leaves, then every range with its replicas.
pub fn render(table: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "zone table version {}, replication {}",
        table["version"].as_u64().unwrap_or(0),
        table["replication"].as_u64().unwrap_or(0)
    );
    let _ = writeln!(out, "leaves:");
    if let Some(leaves) = table["leaves"].as_object() {
        for (name, e) in leaves {
            let accepting = if e["accepting"].as_bool().unwrap_or(false) { "accepting" } else { "draining" };
            let _ = writeln!(out, "  {name:<12} {:<22} {accepting}", e["addr"].as_str().unwrap_or("?"));
        }
    }
    let _ = writeln!(out, "ranges:");
    for r in table["ranges"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let start = escape(r["start"].as_array().map(Vec::as_slice).unwrap_or_default());
        let end = match r["end"].as_array() {
            Some(e) => escape(e),
            None => "∞".to_owned(),
        };
        let replicas: Vec<String> = r["replicas"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|x| {
                format!("{} {}", x["leaf"].as_str().unwrap_or("?"), x["state"].as_str().unwrap_or("?").to_lowercase())
            })
            .collect();
        let _ = writeln!(out, "  {:>4} [{start}, {end})  {}", r["id"].as_u64().unwrap_or(0), replicas.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_reads_as_leaves_and_ranges() {
        let t = serde_json::json!({
            "version": 7, "replication": 2, "next_range_id": 3,
            "ranges": [
                {"id": 2, "start": [], "end": [100, 0, 1], "replicas": [{"leaf": "leaf-1", "state": "Ready"}], "changed_at": 5},
                {"id": 3, "start": [100, 0, 1], "end": null, "replicas": [{"leaf": "leaf-1", "state": "Ready"}, {"leaf": "leaf-2", "state": "Joining"}], "changed_at": 7}
            ],
            "leaves": {"leaf-1": {"addr": "10.0.0.1:7070", "accepting": true}, "leaf-2": {"addr": "10.0.0.2:7070", "accepting": false}},
            "schemas": {}
        });
        let text = render(&t);
        assert!(text.starts_with("zone table version 7, replication 2\n"), "{text}");
        assert!(text.contains("leaf-2       10.0.0.2:7070          draining"), "{text}");
        assert!(text.contains("   2 [, d\\x00\\x01)  leaf-1 ready"), "{text}");
        assert!(text.contains("   3 [d\\x00\\x01, ∞)  leaf-1 ready, leaf-2 joining"), "{text}");
    }
}
