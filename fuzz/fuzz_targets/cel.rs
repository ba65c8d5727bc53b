//! Any bytes as a CEL expression, optionally followed by a NUL and YAML variables: compiling,
//! evaluating and converting the result must never panic, overflow the stack or hang.

#![no_main]

use kubezen::cel::{Engine, Variables};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (expression, variables) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(expression) = std::str::from_utf8(expression) else {
        return;
    };
    let variables = match variables.map(std::str::from_utf8) {
        Some(Ok(text)) => Variables::from_yaml(text).unwrap_or_default(),
        _ => Variables::new(),
    };
    let engine = Engine::global();
    if let Ok(program) = engine.compile(expression) {
        if let Ok(value) = program.evaluate(&variables) {
            let _ = value.to_json();
            let _ = value.to_yaml();
        }
    }
});
