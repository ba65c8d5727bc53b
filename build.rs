//! Records what `kubezen::version::VersionInfo` reports: the git commit, the target triple,
//! the compiler and the build profile. Nothing here fails the build: a source tree without
//! git (an sdist, a tarball) reports the commit as "unknown".

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KUBEZEN_GIT_COMMIT");
    let commit = std::env::var("KUBEZEN_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KUBEZEN_GIT_COMMIT={}", commit.trim());

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=KUBEZEN_TARGET={target}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=KUBEZEN_PROFILE={profile}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output_of(Command::new(rustc).arg("--version"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KUBEZEN_RUSTC={rustc_version}");
}

/// The commit of HEAD, and a request to run again when HEAD moves.
fn git_commit() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git_dir = output_of(
        Command::new("git")
            .args(["rev-parse", "--absolute-git-dir"])
            .current_dir(&manifest_dir),
    )?;
    let git_dir = Path::new(git_dir.trim());
    // HEAD names the branch; the branch's ref, loose under refs/heads or packed, names the
    // commit. Only paths that exist are watched: cargo re-runs a build script on every build
    // when a watched path is missing.
    for watched in ["HEAD", "packed-refs", "refs/heads"] {
        let path = git_dir.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    output_of(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&manifest_dir),
    )
}

fn output_of(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).ok())
        .flatten()
}
