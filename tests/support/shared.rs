//! What the core's and the plugin's test harnesses share: skips said and counted, and what
//! they know of the real control plane of `tests/control-plane/cluster.sh`.

/// Says on stderr that a test skips part of itself, and why; with `ZEN_TEST_SKIP_LOG` set
/// (`make test` sets it for the real control plane's pass), also adds a line to that file, which
/// `tests/control-plane/cluster.sh skips` counts at the end of the run.
#[allow(clippy::print_stderr)]
pub fn skip(why: &str) {
    use std::io::Write as _;
    eprintln!("skipped: {why}");
    if let Some(path) = std::env::var_os("ZEN_TEST_SKIP_LOG").filter(|path| !path.is_empty()) {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let line = format!("{test}: {why}\n");
        // One write of one line, appended: tests on other threads add theirs whole.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written {
            eprintln!("cannot record the skip in {}: {error}", path.display());
        }
    }
}

/// The label naming the test namespace a cluster-scoped object was made for.
pub const TEST_NAMESPACE: &str = "kubezen.io/test-namespace";

/// The directory of `tests/control-plane/cluster.sh run`'s cluster, when that is the real one.
pub fn control_plane() -> Option<std::ffi::OsString> {
    std::env::var_os("ZEN_TEST_CONTROL_PLANE").filter(|dir| !dir.is_empty())
}
