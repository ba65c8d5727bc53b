//! Any bytes as resource graph definitions: reading, analysing, ordering and exporting must
//! never panic, overflow the stack or hang.

#![no_main]

use kubezen::graph::{Catalog, parse_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(graphs) = parse_str(text, "fuzz", &Catalog::builtin()) else {
        return;
    };
    for graph in graphs {
        let _ = (graph.order(), graph.waves(), graph.levels(), graph.critical_path());
        let _ = (graph.cycles(), graph.to_dot(), graph.to_mermaid(), graph.to_svg());
        let _ = graph.instance_crd();
    }
});
