//! Reading resource graph definitions from files, directories, readers and text.

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use serde::Deserialize as _;
use serde_json::Value as Json;

use super::{Catalog, Origin, ResourceGraph};

/// The largest input read, in bytes: 16 MiB. An RGD is stored in etcd, whose objects are
/// limited to 1.5 MiB; this leaves ten times that for generated graphs and files of many
/// RGDs (100,000 small resources fit), and refuses what would only exhaust memory: parsed,
/// a graph takes ~35 bytes of memory per byte of YAML.
pub const MAX_INPUT_BYTES: u64 = 16 << 20;

/// Directories are walked this deep at most.
const MAX_DIRECTORY_DEPTH: usize = 16;

/// Why input could not be read as resource graph definitions. Problems *inside* a graph are
/// not errors but [`Diagnostic`](super::Diagnostic)s.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The input.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The input is not UTF-8 text.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The input.
        path: String,
        /// The offset of the first invalid byte.
        offset: usize,
    },
    /// A document is not valid YAML (or holds something JSON cannot, such as a non-string key).
    #[error("{origin}: invalid YAML: {message}")]
    Yaml {
        /// Where.
        origin: Origin,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// No document in the input is a `CustomResourceDefinition` (for `--crd`).
    #[error("{path}: no CustomResourceDefinition found")]
    NoCrds {
        /// The input.
        path: String,
    },
    /// The graph could not be read from the cluster (`rgd/NAME`).
    #[error("{0}")]
    Cluster(String),
    /// No document in the input is a `ResourceGraphDefinition`.
    #[error(
        "{path}: no ResourceGraphDefinition (kind: ResourceGraphDefinition, apiVersion: kro.run/v1alpha1) found"
    )]
    NoGraphs {
        /// The input.
        path: String,
    },
}

impl LoadError {
    /// A hint for the person at the terminal.
    #[must_use]
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            LoadError::TooLarge { .. } => Some(
                "the API server stores an RGD in one etcd object (1.5 MiB at most): split the graph",
            ),
            LoadError::NotUtf8 { .. } => Some("save the file as UTF-8"),
            LoadError::Yaml { .. } => Some(
                "quote values that start with [ { * & ! | > or contain ': ' (e.g. \"[]string\")",
            ),
            LoadError::NoGraphs { .. } => {
                Some("pass the file that holds the RGD; other kinds of objects are skipped")
            }
            LoadError::NoCrds { .. } => {
                Some("export them with: kubectl get crd NAME -o yaml > crd.yaml")
            }
            LoadError::Cluster(_) => {
                Some("check the name with: kubectl get rgd (KRO's CRD must be installed)")
            }
            LoadError::Io { .. } => None,
        }
    }
}

/// Every resource graph definition in `path`: a file of YAML or JSON documents, or a
/// directory whose `.yaml`, `.yml` and `.json` files are read in name order, recursively.
/// Documents of other kinds are skipped; templates are checked against `catalog`.
///
/// # Errors
/// [`LoadError`] when a file cannot be read or parsed, or holds no RGD at all.
pub fn load_path(path: &Path, catalog: &Catalog) -> Result<Vec<ResourceGraph>, LoadError> {
    let mut graphs = Vec::new();
    for_each_document(path, "ResourceGraphDefinition", &mut |origin, document| {
        if is_graph(&document) {
            graphs.push(ResourceGraph::from_json(document, origin, catalog));
        }
    })?;
    if graphs.is_empty() {
        return Err(LoadError::NoGraphs {
            path: path.display().to_string(),
        });
    }
    Ok(graphs)
}

/// Calls `each` with every document in `path` (a file, or a directory read recursively in
/// name order), one file at a time. In a directory, a file that does not parse is skipped
/// unless it mentions `kind` (Helm templates are not ours to judge; a broken RGD is).
pub(crate) fn for_each_document(
    path: &Path,
    kind: &str,
    each: &mut dyn FnMut(Origin, Json),
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    };
    if !fs::metadata(path).map_err(io)?.is_dir() {
        let name = path.display().to_string();
        for (origin, document) in documents(&read_limited(path)?, &name)? {
            each(origin, document);
        }
        return Ok(());
    }
    let mut files = Vec::new();
    collect_files(path, 0, &mut files)?;
    for file in &files {
        let bytes = read_limited(file)?;
        match documents(&bytes, &file.display().to_string()) {
            Ok(found) => {
                for (origin, document) in found {
                    each(origin, document);
                }
            }
            Err(_) if !contains(&bytes, kind.as_bytes()) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Every resource graph definition read from `reader` (standard input, say), named `name` in
/// diagnostics.
///
/// # Errors
/// As [`load_path`].
pub fn load_reader(
    reader: impl Read,
    name: &str,
    catalog: &Catalog,
) -> Result<Vec<ResourceGraph>, LoadError> {
    let graphs: Vec<ResourceGraph> = documents(&read_all(reader, name, MAX_INPUT_BYTES)?, name)?
        .into_iter()
        .filter(|(_, document)| is_graph(document))
        .map(|(origin, document)| ResourceGraph::from_json(document, origin, catalog))
        .collect();
    if graphs.is_empty() {
        return Err(LoadError::NoGraphs {
            path: name.to_owned(),
        });
    }
    Ok(graphs)
}

/// Every YAML or JSON document of a file, or of standard input when `path` is `-`, under the
/// same size limit as graphs: what reads a graph instance or any other manifest.
///
/// # Errors
/// [`LoadError`] when the input cannot be read, is too large, not UTF-8 or not YAML.
pub fn read_documents(path: &Path) -> Result<Vec<(Origin, Json)>, LoadError> {
    text_documents(
        &read_text(path, MAX_INPUT_BYTES)?,
        &path.display().to_string(),
    )
}

/// The text of a file, or of standard input when `path` is `-`, read no further than `limit`
/// bytes.
///
/// # Errors
/// [`LoadError::Io`] when it cannot be read, [`LoadError::TooLarge`] over `limit`,
/// [`LoadError::NotUtf8`].
pub fn read_text(path: &Path, limit: u64) -> Result<String, LoadError> {
    let name = path.display().to_string();
    let bytes = if path == Path::new("-") {
        read_all(io::stdin().lock(), &name, limit)?
    } else {
        let file = fs::File::open(path).map_err(|source| LoadError::Io {
            path: name.clone(),
            source,
        })?;
        read_all(file, &name, limit)?
    };
    String::from_utf8(bytes).map_err(|e| LoadError::NotUtf8 {
        path: name,
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Every document of Kubernetes manifests: a file, standard input (`-`), or a directory read
/// recursively in name order (`.yaml`, `.yml`, `.json`), under the size limit of graphs. In a
/// directory, a file that does not parse and holds no `apiVersion` (a Helm template, say) is
/// skipped; a broken manifest is an error.
///
/// # Errors
/// [`LoadError`] when an input cannot be read, is too large, not UTF-8 or not YAML.
pub fn read_manifests(path: &Path) -> Result<Vec<(Origin, Json)>, LoadError> {
    if path == Path::new("-") {
        return read_documents(path);
    }
    let mut found = Vec::new();
    for_each_document(path, "apiVersion", &mut |origin, document| {
        found.push((origin, document));
    })?;
    Ok(found)
}

/// Every YAML or JSON document of `text`, named `name` in errors.
///
/// # Errors
/// [`LoadError::Yaml`] for a document that does not parse.
pub fn parse_documents(text: &str, name: &str) -> Result<Vec<(Origin, Json)>, LoadError> {
    text_documents(text, name)
}

fn read_all(reader: impl Read, name: &str, limit: u64) -> Result<Vec<u8>, LoadError> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| LoadError::Io {
            path: name.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(LoadError::TooLarge {
            path: name.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

fn collect_files(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for entry in entries {
        // Symbolic links to directories are not followed: no loops.
        let meta = fs::symlink_metadata(&entry).map_err(|source| LoadError::Io {
            path: entry.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            if depth < MAX_DIRECTORY_DEPTH {
                collect_files(&entry, depth + 1, files)?;
            }
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(())
}

fn read_limited(path: &Path) -> Result<Vec<u8>, LoadError> {
    let name = path.display().to_string();
    let file = fs::File::open(path).map_err(|source| LoadError::Io {
        path: name.clone(),
        source,
    })?;
    read_all(file, &name, MAX_INPUT_BYTES)
}

/// The documents of `bytes`, which must be UTF-8 text.
fn documents(bytes: &[u8], name: &str) -> Result<Vec<(Origin, Json)>, LoadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LoadError::NotUtf8 {
        path: name.to_owned(),
        offset: e.valid_up_to(),
    })?;
    text_documents(text, name)
}

fn text_documents(text: &str, name: &str) -> Result<Vec<(Origin, Json)>, LoadError> {
    let mut found = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: name.to_owned(),
            document: index + 1,
        };
        let value = Json::deserialize(document).map_err(|e| LoadError::Yaml {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        found.push((origin, value));
    }
    Ok(found)
}

/// Every resource graph definition in `text` (YAML or JSON, one or more documents), checked
/// against `catalog`; documents of other kinds are skipped. An empty result is not an error
/// here.
///
/// # Errors
/// [`LoadError::Yaml`] for a document that does not parse.
pub fn parse_str(
    text: &str,
    name: &str,
    catalog: &Catalog,
) -> Result<Vec<ResourceGraph>, LoadError> {
    Ok(text_documents(text, name)?
        .into_iter()
        .filter(|(_, document)| is_graph(document))
        .map(|(origin, document)| ResourceGraph::from_json(document, origin, catalog))
        .collect())
}

fn is_graph(value: &Json) -> bool {
    value.get("kind").and_then(Json::as_str) == Some("ResourceGraphDefinition")
        && value
            .get("apiVersion")
            .and_then(Json::as_str)
            .is_some_and(|v| v.starts_with("kro.run/"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads a ResourceGraphDefinition from the cluster (`kubectl get rgd NAME`) and analyses it
/// as a file would be.
///
/// # Errors
/// [`LoadError::Cluster`] when it cannot be read (not found, KRO's CRD not installed).
pub async fn fetch(
    cluster: &crate::cluster::Cluster,
    name: &str,
    catalog: &Catalog,
) -> Result<ResourceGraph, LoadError> {
    let gvk = kube::api::GroupVersionKind::gvk("kro.run", "v1alpha1", "ResourceGraphDefinition");
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(cluster.client(), &resource);
    let object = api.get(name).await.map_err(|error| {
        LoadError::Cluster(format!(
            "cannot read rgd/{name} from {}: {}",
            cluster.server(),
            crate::cluster::api_message(&error)
        ))
    })?;
    let document = serde_json::to_value(&object).unwrap_or(Json::Null);
    Ok(ResourceGraph::from_json(
        document,
        Origin {
            file: format!("rgd/{name}"),
            document: 1,
        },
        catalog,
    ))
}
