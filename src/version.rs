//! What build of kubectl-zen this is.

use serde::Serialize;

use crate::table::{Cell, Column, Table, Tabular};

/// The version, commit, target and toolchain this library was built from.
///
/// Both faces report the same value: `kubectl zen version` and `kubezen.version_info()`.
///
/// ```
/// let info = kubezen::VersionInfo::current();
/// assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The semantic version shared by the core, the plugin and the Python package.
    pub version: &'static str,
    /// The full git commit the build came from, or `unknown` outside a git checkout.
    pub git_commit: &'static str,
    /// The Rust target triple, such as `x86_64-unknown-linux-gnu`.
    pub target: &'static str,
    /// The version of the Rust compiler that built it.
    pub rustc: &'static str,
    /// The cargo profile: `debug` for development builds, `release` otherwise.
    pub profile: &'static str,
}

impl VersionInfo {
    /// The build information of this library, fixed at compile time.
    #[must_use]
    pub const fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            git_commit: env!("KUBEZEN_GIT_COMMIT"),
            target: env!("KUBEZEN_TARGET"),
            rustc: env!("KUBEZEN_RUSTC"),
            profile: env!("KUBEZEN_PROFILE"),
        }
    }

    /// The commit shortened to 12 characters, as shown in tables.
    #[must_use]
    pub fn short_commit(&self) -> &'static str {
        self.git_commit.get(..12).unwrap_or(self.git_commit)
    }
}

impl Tabular for VersionInfo {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("VERSION"),
            Column::new("COMMIT"),
            Column::new("TARGET"),
            Column::wide("RUSTC"),
            Column::wide("PROFILE"),
        ]);
        table.push_row(vec![
            Cell::from(self.version),
            Cell::from(self.short_commit()),
            Cell::from(self.target),
            Cell::from(self.rustc),
            Cell::from(self.profile),
        ]);
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_reports_the_crate_version_and_a_real_target() {
        let info = VersionInfo::current();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(info.target.contains('-'), "target triple: {}", info.target);
        assert!(
            info.rustc.split('.').count() >= 3,
            "rustc version: {}",
            info.rustc
        );
        assert!(matches!(info.profile, "debug" | "release"));
    }

    #[test]
    fn git_commit_is_a_full_hash_or_unknown() {
        let commit = VersionInfo::current().git_commit;
        assert!(
            commit == "unknown"
                || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "git commit: {commit}"
        );
    }

    #[test]
    fn short_commit_keeps_twelve_characters_and_leaves_unknown_alone() {
        let mut info = VersionInfo::current();
        info.git_commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(info.short_commit(), "0123456789ab");
        info.git_commit = "unknown";
        assert_eq!(info.short_commit(), "unknown");
    }

    #[test]
    fn serializes_with_kubernetes_style_camel_case_keys_in_field_order() {
        let info = VersionInfo::current();
        let expected = format!(
            r#"{{"version":"{}","gitCommit":"{}","target":"{}","rustc":"{}","profile":"{}"}}"#,
            info.version, info.git_commit, info.target, info.rustc, info.profile
        );
        assert_eq!(serde_json::to_string(&info).unwrap(), expected);
    }

    #[test]
    fn table_hides_toolchain_columns_unless_wide() {
        let table = VersionInfo::current().to_table();
        let narrow = table.to_plain_text(false);
        let wide = table.to_plain_text(true);
        assert!(narrow.starts_with("VERSION"));
        assert!(!narrow.contains("RUSTC"));
        assert!(wide.contains("RUSTC") && wide.contains("PROFILE"));
    }
}
