//! Applying tune's patches to a cluster: first what would change (a server-side dry run of
//! each patch, diffed against the live object), then, once confirmed, the same patches for
//! real, server-side, as field manager `kubectl-zen`.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch as KubePatch, PatchParams};
use serde::Serialize;
use serde_json::Value as Json;

use super::report::Patch;
use crate::cluster::{Cluster, FIELD_MANAGER, api_message, yaml_diff};

/// What applying one patch did or would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The workload, `namespace/kind/name`.
    pub workload: String,
    /// The unified diff of the workload (empty: no change).
    pub diff: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

fn api(cluster: &Cluster, patch: &Patch) -> kube::Api<DynamicObject> {
    let kind = patch.workload.kind;
    let (group, version) = kind
        .api_version()
        .split_once('/')
        .unwrap_or(("", kind.api_version()));
    let plural = format!("{}s", kind.as_str().to_ascii_lowercase());
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.as_str()),
        &plural,
    );
    kube::Api::namespaced_with(cluster.client(), &patch.workload.namespace, &resource)
}

/// Applies each patch server-side (a dry run when `dry_run`), returning the diff of each
/// workload against what it was. Failures are reported per workload; the others go on.
/// `force` takes the fields over from another field manager (409 conflicts otherwise).
pub async fn apply(
    cluster: &Cluster,
    patches: &[Patch],
    dry_run: bool,
    force: bool,
) -> Vec<Applied> {
    let mut results = Vec::with_capacity(patches.len());
    for patch in patches {
        let api = api(cluster, patch);
        let name = &patch.workload.name;
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.dry_run = dry_run;
        params.force = force;
        let outcome = async {
            let live = api.get(name).await?;
            let after = api
                .patch(name, &params, &KubePatch::Apply(&patch.object))
                .await?;
            let json = |o: &DynamicObject| serde_json::to_value(o).unwrap_or(Json::Null);
            // A patch writes the spec only: the diff is of the spec, so what controllers
            // change meanwhile in the metadata (the Deployment's revision annotation, bumped
            // between the read and the write) is not shown as this change.
            let (live, mut after) = (json(&live), json(&after));
            if let (Some(after), Some(metadata)) = (after.as_object_mut(), live.get("metadata")) {
                after.insert("metadata".to_owned(), metadata.clone());
            }
            Ok::<_, kube::Error>(yaml_diff(Some(&live), Some(&after)))
        }
        .await;
        results.push(match outcome {
            Ok(diff) => Applied { workload: patch.workload.to_string(), diff, error: None },
            Err(error) => {
                let mut message = api_message(&error);
                if crate::cluster::is_conflict(&error) {
                    message.push_str(" (another field manager owns these fields: --force-conflicts takes them over)");
                }
                Applied { workload: patch.workload.to_string(), diff: String::new(), error: Some(message) }
            }
        });
    }
    results
}
