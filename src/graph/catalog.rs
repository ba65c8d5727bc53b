//! The schemas of the objects templates describe: Kubernetes' built-in kinds (from
//! k8s-openapi) and custom resources (from their CRDs), so a graph's fields and expressions
//! can be checked against the types they fill.

use std::{
    path::Path,
    sync::{Arc, LazyLock, OnceLock},
};

use foldhash::HashMap;
use k8s_openapi::{
    Resource,
    api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch, core::v1 as core,
        networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions,
};
use serde_json::Value as Json;

use super::{LoadError, source};

/// A built-in kind: where its schema comes from, made on first use.
struct Builtin {
    api_version: &'static str,
    kind: &'static str,
    make: fn() -> Json,
}

fn schema_of<T: schemars::JsonSchema>() -> Json {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

macro_rules! builtins {
    ($($kind:ty),* $(,)?) => {
        [$(Builtin {
            api_version: <$kind as Resource>::API_VERSION,
            kind: <$kind as Resource>::KIND,
            make: schema_of::<$kind>,
        }),*]
    };
}

/// The built-in kinds whose templates are checked: what resource graphs commonly hold.
static BUILTINS: [Builtin; 34] = builtins![
    core::ConfigMap,
    core::Secret,
    core::Service,
    core::ServiceAccount,
    core::Pod,
    core::PersistentVolumeClaim,
    core::PersistentVolume,
    core::Namespace,
    core::LimitRange,
    core::ResourceQuota,
    core::Endpoints,
    core::ReplicationController,
    apps::Deployment,
    apps::StatefulSet,
    apps::DaemonSet,
    apps::ReplicaSet,
    batch::Job,
    batch::CronJob,
    networking::Ingress,
    networking::IngressClass,
    networking::NetworkPolicy,
    autoscaling::HorizontalPodAutoscaler,
    policy::PodDisruptionBudget,
    rbac::Role,
    rbac::RoleBinding,
    rbac::ClusterRole,
    rbac::ClusterRoleBinding,
    storage::StorageClass,
    storage::CSIDriver,
    scheduling::PriorityClass,
    k8s_openapi::api::coordination::v1::Lease,
    k8s_openapi::api::discovery::v1::EndpointSlice,
    k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    apiextensions::CustomResourceDefinition,
];

static BUILTIN_SCHEMAS: LazyLock<Vec<OnceLock<Arc<Json>>>> =
    LazyLock::new(|| BUILTINS.iter().map(|_| OnceLock::new()).collect());

/// Every object's `metadata`, whatever its schema says of it (CRDs rarely describe it).
static OBJECT_META: LazyLock<Json> =
    LazyLock::new(schema_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>);

/// Known object schemas by `apiVersion` and `kind`: the built-in kinds, and the custom
/// resources whose CRDs were added.
///
/// ```
/// use kubezen::graph::Catalog;
///
/// let catalog = Catalog::builtin();
/// assert!(catalog.knows("apps/v1", "Deployment"));
/// assert!(!catalog.knows("example.com/v1", "Widget"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    custom: HashMap<(String, String), Arc<Json>>,
}

impl Catalog {
    /// The built-in kinds only.
    #[must_use]
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Whether the catalog has a schema for this kind.
    #[must_use]
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.custom
            .contains_key(&(api_version.to_owned(), kind.to_owned()))
            || BUILTINS
                .iter()
                .any(|b| b.api_version == api_version && b.kind == kind)
    }

    /// The number of custom kinds added.
    #[must_use]
    pub fn custom_kinds(&self) -> usize {
        self.custom.len()
    }

    /// Adds the schema of every version of `crd` (a `CustomResourceDefinition` object).
    ///
    /// # Errors
    /// A message when the object is not a CRD with `spec.group`, `spec.names.kind` and
    /// versions carrying `schema.openAPIV3Schema`.
    pub fn add_crd(&mut self, crd: &Json) -> Result<usize, String> {
        if crd.get("kind").and_then(Json::as_str) != Some("CustomResourceDefinition") {
            return Err("not a CustomResourceDefinition".into());
        }
        let text = |pointer: &str| crd.pointer(pointer).and_then(Json::as_str);
        let group = text("/spec/group").ok_or("spec.group is missing")?;
        let kind = text("/spec/names/kind").ok_or("spec.names.kind is missing")?;
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Json::as_array)
            .ok_or("spec.versions is missing")?;
        let mut added = 0;
        for version in versions {
            let (Some(name), Some(schema)) = (
                version.get("name").and_then(Json::as_str),
                version.pointer("/schema/openAPIV3Schema"),
            ) else {
                continue;
            };
            let api_version = if group.is_empty() {
                name.to_owned()
            } else {
                format!("{group}/{name}")
            };
            self.custom
                .insert((api_version, kind.to_owned()), Arc::new(schema.clone()));
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "CRD {kind}.{group} has no version with schema.openAPIV3Schema"
            ));
        }
        Ok(added)
    }

    /// Adds every CRD in `path` (a file or a directory of YAML/JSON documents); other kinds
    /// are skipped.
    ///
    /// # Errors
    /// [`LoadError`] when the files cannot be read or parsed, or hold no CRD.
    pub fn add_crds_from_path(&mut self, path: &Path) -> Result<usize, LoadError> {
        let mut added = 0;
        let mut failed = None;
        source::for_each_document(path, "CustomResourceDefinition", &mut |origin, document| {
            if failed.is_none()
                && document.get("kind").and_then(Json::as_str) == Some("CustomResourceDefinition")
            {
                match self.add_crd(&document) {
                    Ok(versions) => added += versions,
                    Err(message) => failed = Some(LoadError::Yaml { origin, message }),
                }
            }
        })?;
        if let Some(error) = failed {
            return Err(error);
        }
        if added == 0 {
            return Err(LoadError::NoCrds {
                path: path.display().to_string(),
            });
        }
        Ok(added)
    }

    /// The schema of a kind: the root (holding `$defs` for references) and the object's own.
    pub(crate) fn schema(&self, api_version: &str, kind: &str) -> Option<Arc<Json>> {
        if let Some(custom) = self.custom.get(&(api_version.to_owned(), kind.to_owned())) {
            return Some(Arc::clone(custom));
        }
        let at = BUILTINS
            .iter()
            .position(|b| b.api_version == api_version && b.kind == kind)?;
        Some(Arc::clone(
            BUILTIN_SCHEMAS[at].get_or_init(|| Arc::new((BUILTINS[at].make)())),
        ))
    }
}

/// What a schema says about a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field<'s> {
    /// The field's own schema.
    Known(Cursor<'s>),
    /// A schemaless part: any field may exist there.
    Open,
    /// The schema does not define the field.
    Missing,
}

/// A place in an object's schema: the schema there and the root its `$ref`s point into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor<'s> {
    root: &'s Json,
    /// The (resolved) schema of the field.
    pub(crate) schema: &'s Json,
}

impl<'s> Cursor<'s> {
    /// The top of an object schema.
    pub(crate) fn object(root: &'s Json) -> Self {
        Self {
            root,
            schema: resolve(root, root),
        }
    }

    /// The field `segment` below this one (a property, a map value, or a list item when the
    /// segment is a number). At an object's top, `metadata` is always `ObjectMeta` and
    /// `apiVersion` and `kind` are strings, whatever the schema says (CRDs rarely do).
    pub(crate) fn child(self, segment: &str, at_top: bool) -> Field<'s> {
        if at_top {
            match segment {
                "metadata" => return Field::Known(Cursor::object(&OBJECT_META)),
                "apiVersion" | "kind" => {
                    return Field::Known(Cursor {
                        root: &STRING,
                        schema: &STRING,
                    });
                }
                _ => {}
            }
        }
        let at = self.schema;
        if at.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true))
            && at.get("properties").is_none()
        {
            return Field::Open;
        }
        let next = if let Some(property) = at.get("properties").and_then(|p| p.get(segment)) {
            property
        } else if let Some(values) = at.get("additionalProperties") {
            if values.is_boolean() {
                return Field::Open;
            }
            values
        } else if let Some(items) = at.get("items").filter(|_| segment.parse::<usize>().is_ok()) {
            items
        } else if at.get("properties").is_none() && at.get("type").is_none() {
            // No structure declared (an empty schema): anything goes.
            return Field::Open;
        } else {
            return Field::Missing;
        };
        Field::Known(Cursor {
            root: self.root,
            schema: resolve(self.root, next),
        })
    }
}

static STRING: LazyLock<Json> = LazyLock::new(|| serde_json::json!({"type": "string"}));

/// Follows `$ref` (to `root`'s `$defs` or `definitions`) until a schema that is not a bare
/// reference.
fn resolve<'s>(root: &'s Json, mut schema: &'s Json) -> &'s Json {
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Json::as_str) else {
            return schema;
        };
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer));
        match target {
            Some(next) => schema = next,
            None => return schema,
        }
    }
    schema
}

/// What an object schema (`root`) says about the field at `path` (segments from the object's
/// top; list positions as numbers).
pub(crate) fn field<'s, S: AsRef<str>>(root: &'s Json, path: &[S]) -> Field<'s> {
    let mut at = Cursor::object(root);
    for (n, segment) in path.iter().enumerate() {
        match at.child(segment.as_ref(), n == 0) {
            Field::Known(next) => at = next,
            other => return other,
        }
    }
    Field::Known(at)
}

/// The CEL type a field's schema holds: `string`, `int`, `double`, `bool`, `list`, `map`;
/// `None` when it takes several (int-or-string) or says nothing.
pub(crate) fn cel_type(schema: &Json) -> Option<&'static str> {
    if schema.get("x-kubernetes-int-or-string") == Some(&Json::Bool(true)) {
        return None;
    }
    Some(match schema.get("type")?.as_str()? {
        "string" => "string",
        "integer" => "int",
        "number" => "double",
        "boolean" => "bool",
        "array" => "list",
        "object" => "map",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Catalog, Field, cel_type, field};

    fn path(text: &str) -> Vec<String> {
        text.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn builtin_schemas_follow_references() {
        let catalog = Catalog::builtin();
        let deployment = catalog.schema("apps/v1", "Deployment").unwrap();
        let at = |p: &str| field(&deployment, &path(p));
        let kind = |p: &str| match at(p) {
            Field::Known(cursor) => cel_type(cursor.schema),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(kind("spec.replicas"), Some("int"));
        assert_eq!(
            kind("spec.template.spec.containers.0.image"),
            Some("string")
        );
        assert_eq!(kind("metadata.labels.app"), Some("string"));
        assert_eq!(
            kind("spec.template.spec.containers.0.ports.0.containerPort"),
            Some("int")
        );
        assert_eq!(at("spec.replcias"), Field::Missing);
        let service = catalog.schema("v1", "Service").unwrap();
        let Field::Known(target) = field(&service, &path("spec.ports.0.targetPort")) else {
            panic!()
        };
        assert_eq!(cel_type(target.schema), None, "int-or-string takes both");
        assert!(catalog.schema("example.com/v1", "Widget").is_none());
    }

    #[test]
    fn every_builtin_has_an_object_schema() {
        let catalog = Catalog::builtin();
        for builtin in &super::BUILTINS {
            let schema = catalog.schema(builtin.api_version, builtin.kind).unwrap();
            assert!(
                matches!(field(&schema, &path("metadata.name")), Field::Known(_)),
                "{} {}",
                builtin.api_version,
                builtin.kind
            );
        }
    }

    #[test]
    fn crds_add_their_versions() {
        let mut catalog = Catalog::builtin();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "spec": {"group": "example.com", "names": {"kind": "Widget"}, "versions": [
                {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
                {"name": "v2"}]}
        });
        assert_eq!(catalog.add_crd(&crd), Ok(1));
        let widget = catalog.schema("example.com/v1", "Widget").unwrap();
        let Field::Known(size) = field(&widget, &path("spec.size")) else {
            panic!()
        };
        assert_eq!(cel_type(size.schema), Some("int"));
        assert_eq!(field(&widget, &path("status.anything.at.all")), Field::Open);
        assert_eq!(field(&widget, &path("spec.colour")), Field::Missing);
        let Field::Known(name) = field(&widget, &path("metadata.name")) else {
            panic!()
        };
        assert_eq!(
            cel_type(name.schema),
            Some("string"),
            "metadata is ObjectMeta in CRDs too"
        );
        assert!(catalog.add_crd(&json!({"kind": "ConfigMap"})).is_err());
    }
}
