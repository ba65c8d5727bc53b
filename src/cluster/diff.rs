//! Object diffs for people: what `--diff` and confirmation prompts show.

use serde_json::{Value as Json, json};
use sha2::Digest as _;

/// The annotation holding a hash of what kubectl-zen last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "zen.kubezen.io/applied-hash";

/// A unified diff of two objects' YAML (`live` and `desired`, either absent), as a person
/// compares them: without status, server-managed metadata or kubezen's applied-hash annotation,
/// and with Secret values replaced by salted hashes (a change still shows; a value never does).
#[must_use]
pub fn yaml_diff(live: Option<&Json>, desired: Option<&Json>) -> String {
    let text = |object: Option<&Json>| {
        object
            .map(|o| serde_norway::to_string(&comparable(o)).unwrap_or_default())
            .unwrap_or_default()
    };
    let (before, after) = (text(live), text(desired));
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}

/// The object as a person compares it: without what the server manages, and without Secret
/// data.
fn comparable(object: &Json) -> Json {
    let mut object = object.clone();
    let secret = object.get("kind").and_then(Json::as_str) == Some("Secret");
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if secret {
            // Never print a Secret's data: a salted hash of each value (the salt new in every
            // process) still shows a change, and cannot be looked up.
            for field in ["data", "stringData"] {
                for value in map
                    .get_mut(field)
                    .and_then(Json::as_object_mut)
                    .into_iter()
                    .flat_map(|m| m.values_mut())
                {
                    let text = serde_json::to_string(&json!([*SALT, value])).unwrap_or_default();
                    let digest = format!("{:x}", sha2::Sha256::digest(text.as_bytes()));
                    *value = Json::String(format!("(redacted, sha256 {})", &digest[..12]));
                }
            }
        }
        if let Some(metadata) = map.get_mut("metadata").and_then(Json::as_object_mut) {
            for key in [
                "managedFields",
                "resourceVersion",
                "uid",
                "generation",
                "creationTimestamp",
            ] {
                metadata.remove(key);
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Json::as_object_mut)
            {
                annotations.remove(APPLIED_HASH_ANNOTATION);
                if annotations.is_empty() {
                    metadata.remove("annotations");
                }
            }
        }
    }
    object
}

/// The salt of the hashes that stand for Secret values in diffs.
static SALT: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| fastrand::u64(..));
