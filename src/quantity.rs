//! Kubernetes resource quantities (`250m`, `1.5`, `128Mi`, `1e9`), read into numbers and
//! written back the way people write them.
//!
//! CPU is read into millicores and memory into bytes, as `f64`: precise to well below a
//! millicore or a byte for any size a cluster holds. Writing rounds *up* (a recommendation must
//! never fall below what was measured): CPU to whole millicores, memory to whole mebibytes.

/// Decimal and binary suffixes with their factors; longest first where one is a prefix.
const SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

/// One mebibyte.
pub const MIB: f64 = 1_048_576.0;
/// One gibibyte.
pub const GIB: f64 = 1_073_741_824.0;

/// Reads a quantity into its plain value: `250m` = 0.25, `1Ki` = 1024, `1e3` = 1000.
///
/// `None` for anything the API server would refuse: empty text, a stray suffix, a sign on its
/// own, a value that is not finite. Negative quantities are read (the API refuses them in
/// requests and limits; the caller decides).
#[must_use]
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|number| (number, *factor)))
        .unwrap_or((text, 1.0));
    // A bare exponent (`1e3`) is a number; `1E` alone is the exa suffix, handled above.
    if number.is_empty() || number.ends_with(['e', 'E', '+', '-', '.']) {
        return None;
    }
    if !number
        .bytes()
        .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'+' | b'-' | b'e' | b'E'))
    {
        return None;
    }
    let value = number.parse::<f64>().ok()? * factor;
    value.is_finite().then_some(value)
}

/// Reads a CPU quantity into millicores: `250m` = 250, `2` = 2000, `1500000n` = 1.5.
#[must_use]
pub fn millicores(text: &str) -> Option<f64> {
    parse(text).map(|cores| cores * 1000.0)
}

/// Reads a memory quantity into bytes: `128Mi` = 134217728, `1G` = 1e9.
#[must_use]
pub fn bytes(text: &str) -> Option<f64> {
    parse(text)
}

/// Writes millicores as a CPU quantity, rounded up to a whole millicore: `250m`, `2` for 2000.
#[must_use]
pub fn format_cpu(millicores: f64) -> String {
    let whole = round_up(millicores, 1.0);
    if whole >= 1000.0 && whole % 1000.0 == 0.0 {
        format!("{}", whole / 1000.0)
    } else {
        format!("{whole}m")
    }
}

/// Writes bytes as a memory quantity, rounded up to a whole mebibyte: `100Mi`, `2Gi` when a
/// whole number of gibibytes.
#[must_use]
pub fn format_memory(bytes: f64) -> String {
    let mebibytes = round_up(bytes / MIB, 1.0);
    if mebibytes >= 1024.0 && mebibytes % 1024.0 == 0.0 {
        format!("{}Gi", mebibytes / 1024.0)
    } else {
        format!("{mebibytes}Mi")
    }
}

/// `value` rounded up to a multiple of `step`, tolerating float noise just above a multiple
/// (so 250.0000001 millicores is `250m`, not `251m`).
#[must_use]
pub fn round_up(value: f64, step: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 0.0;
    }
    let steps = value / step;
    let nearest = steps.round();
    if (steps - nearest).abs() < 1e-6 {
        nearest * step
    } else {
        steps.ceil() * step
    }
}

/// Parses a duration as every flag and Python argument takes one: `200ms`, `2s`, `1m`, `3h`,
/// `14d`, `2w`, or a number of seconds.
///
/// # Errors
/// Not a number with one of those units, negative, or too large.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |index| text.split_at(index));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 500ms, 2s, 1m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        "w" => value * 604_800.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use ms, s, m, h, d or w"
            ));
        }
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| format!("not a duration: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_the_api_writes_them() {
        assert_eq!(millicores("250m"), Some(250.0));
        assert_eq!(millicores("2"), Some(2000.0));
        assert_eq!(millicores("0.5"), Some(500.0));
        assert_eq!(millicores("1500000n"), Some(1.5));
        assert_eq!(millicores("1500u"), Some(1.5));
        assert_eq!(bytes("128Mi"), Some(134_217_728.0));
        assert_eq!(bytes("1G"), Some(1e9));
        assert_eq!(bytes("1e3"), Some(1e3));
        assert_eq!(bytes("1E"), Some(1e18));
        assert_eq!(bytes("512"), Some(512.0));
        assert_eq!(bytes("  2Gi "), Some(2.0 * GIB));
        for bad in ["", "lots", "Mi", "1e", "1.", "12 Mi", "1x", "-", "1e999"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn quantities_are_written_rounded_up() {
        assert_eq!(format_cpu(250.0), "250m");
        assert_eq!(format_cpu(250.000_000_1), "250m");
        assert_eq!(format_cpu(250.2), "251m");
        assert_eq!(format_cpu(2000.0), "2");
        assert_eq!(format_cpu(0.2), "1m");
        assert_eq!(format_memory(100.0 * MIB), "100Mi");
        assert_eq!(format_memory(100.5 * MIB), "101Mi");
        assert_eq!(format_memory(2.0 * GIB), "2Gi");
        assert_eq!(format_memory(1500.0 * MIB), "1500Mi");
        for text in ["250m", "2", "100Mi", "2Gi"] {
            let cpu = millicores(text).map(format_cpu);
            let memory = bytes(text).map(format_memory);
            assert!(cpu.as_deref() == Some(text) || memory.as_deref() == Some(text));
        }
    }

    #[test]
    fn durations_read_as_kubectl_writes_them() {
        assert_eq!(
            parse_duration("200ms"),
            Ok(std::time::Duration::from_millis(200))
        );
        assert_eq!(parse_duration("2s"), Ok(std::time::Duration::from_secs(2)));
        assert_eq!(
            parse_duration("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("1m"), Ok(std::time::Duration::from_secs(60)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(
            parse_duration("3 days")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
