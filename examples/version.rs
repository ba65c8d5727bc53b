//! Prints the build information of the kubezen core, as both faces report it.
//!
//! ```text
//! cargo run --example version
//! ```

fn main() {
    let info = kubezen::VersionInfo::current();
    #[allow(clippy::print_stdout)] // an example program's output is the point of it
    {
        println!(
            "kubezen {} ({}, {}, rustc {}, {})",
            info.version,
            info.short_commit(),
            info.target,
            info.rustc,
            info.profile
        );
    }
}
