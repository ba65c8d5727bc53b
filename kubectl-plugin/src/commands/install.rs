//! `kubectl zen install`: the manifests that run a controller in the cluster, printed, applied
//! or removed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use kubezen::install::{self, Component, HeldInstances, InstallError, InstallOptions};
use kubezen::table::{Cell, Column, Table};
use kubezen::{Tabular, Tone};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::cli::GlobalArgs;
use crate::error::{EXIT_OK, Failure};
use crate::output::{Output, OutputFormat};

/// What `kubectl zen install --help` says first.
pub const LONG_ABOUT: &str = "\
Print, apply or remove everything that runs a controller inside the cluster, where Kubernetes
runs, restarts and scales it: Namespace, ServiceAccount, the narrowest ClusterRole and Role the
controller's code calls (derived from it, no wildcards) with their bindings, a Deployment (the
background-job tune preset's requests and limits, /healthz and /readyz probes, non-root,
read-only root filesystem, no privilege escalation, no capabilities, seccomp RuntimeDefault), a
PodDisruptionBudget, a metrics Service on port 8080, and with --replicas above 1 leader election
on a Lease. A reconcile controller also gets its graph in a ConfigMap.

Without --apply the manifests are printed (YAML; -o json for a List), for `kubectl apply -f -`,
kustomize or review; deploy/ holds the same as a kustomize base. Every object is labelled
install.kubezen.io/controller=NAME, which --uninstall deletes by. A Namespace that existed before
is left alone by both. An install whose namespace is gone is stale: --apply removes its
ClusterRoleBinding and says so. A reconcile controller's instances that its finalizer still
holds make --uninstall refuse, listing them, unless --instances says what becomes of them.";

const EXAMPLES: &str = "\
Examples:
  # Review zen-lead's manifests, then install it (server-side apply, field manager kubectl-zen)
  kubectl zen install lead
  kubectl zen install lead --apply

  # The controller of one graph, three replicas, in namespace platform, from a mirror
  kubectl zen install reconcile-controller --rgd examples/rgd/web-app.yaml \\
    -n platform --replicas 3 --image registry.example.com/kubectl-zen:v0.1.0 --apply

  # Check with the API server without storing anything; then remove all of it
  kubectl zen install lead --apply --dry-run
  kubectl zen install lead --uninstall

  # Remove a graph's controller, deleting its instances (and their objects, in order) first
  kubectl zen install reconcile-controller --rgd examples/rgd/web-app.yaml -n platform \
    --uninstall --instances delete";

/// `kubectl zen install`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
#[allow(clippy::struct_excessive_bools)] // the command line's switches, each a flag of its own
pub struct InstallArgs {
    /// The controller to install
    #[arg(value_enum)]
    pub controller: Controller,

    /// reconcile-controller: the `ResourceGraphDefinition` file (- for standard input) whose
    /// instances it reconciles
    #[arg(long, value_name = "FILE")]
    pub rgd: Option<PathBuf>,

    /// Replicas; above 1 they elect one active replica on a Lease
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(install::MAX_REPLICAS)))]
    pub replicas: u16,

    /// The image the Deployment runs (built by the repository's Dockerfile)
    #[arg(long, default_value = install::DEFAULT_IMAGE, value_name = "IMAGE")]
    pub image: String,

    /// Server-side apply the manifests instead of printing them
    #[arg(long, conflicts_with = "uninstall")]
    pub apply: bool,

    /// Delete every object an install of this controller made (found by its label)
    #[arg(long)]
    pub uninstall: bool,

    /// reconcile-controller, with --uninstall: what becomes of the instances its finalizer
    /// still holds (without the controller nothing would release them, and their namespaces
    /// could not be deleted): refuse to uninstall and list them, delete them and their objects
    /// in order first, or orphan them (release them, keep everything)
    #[arg(long, value_enum, default_value_t = Instances::Refuse, requires = "uninstall", value_name = "WHAT")]
    pub instances: Instances,

    /// With --apply or --uninstall: the API server checks everything and stores nothing
    #[arg(long)]
    pub dry_run: bool,

    /// lead: print the install as a `ResourceGraphDefinition` (instance kind `ZenLead`, fields
    /// namespace, replicas, image) for `kubectl zen reconcile` or KRO
    #[arg(long, conflicts_with_all = ["apply", "uninstall"])]
    pub as_graph: bool,

    /// reconcile-controller: CRDs (files or directories) for type-checking custom kinds
    #[arg(long, value_name = "FILE|DIR")]
    pub crd: Vec<PathBuf>,
}

/// `--instances`: what an uninstall does with the instances a reconcile controller holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Instances {
    /// Refuse, listing them
    Refuse,
    /// Delete each and its objects in reverse dependency order, as the controller would
    Delete,
    /// Release them: the finalizer goes, the instances and their objects stay
    Orphan,
}

impl From<Instances> for HeldInstances {
    fn from(instances: Instances) -> Self {
        match instances {
            Instances::Refuse => Self::Refuse,
            Instances::Delete => Self::Delete,
            Instances::Orphan => Self::Orphan,
        }
    }
}

/// The controllers `install` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Controller {
    /// zen-lead's leader-Service controller (`kubectl zen lead`)
    Lead,
    /// The controller of one graph's instances (`kubectl zen reconcile controller`)
    ReconcileController,
}

/// Runs `install`.
pub fn run(args: &InstallArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    if args.dry_run && !args.apply && !args.uninstall {
        return Err(Failure::usage("--dry-run goes with --apply or --uninstall")
            .hint("without either, install only prints the manifests"));
    }
    let component = component(args)?;
    let options = InstallOptions {
        namespace: global
            .namespace
            .clone()
            .unwrap_or_else(|| install::DEFAULT_NAMESPACE.to_owned()),
        replicas: args.replicas,
        image: args.image.clone(),
    };
    if args.as_graph {
        let graph = install::graph(&component).map_err(|e| failure(&e))?;
        return print_manifests(&[graph], global.output);
    }
    let objects = install::manifests(&component, &options).map_err(|e| failure(&e))?;
    if !args.apply && !args.uninstall {
        return print_manifests(&objects, global.output);
    }
    super::runtime()?.block_on(async {
        let cluster = global.connect().await?;
        let changes = if args.uninstall {
            install::uninstall(
                &cluster,
                &component,
                &options.namespace,
                args.instances.into(),
                args.dry_run,
            )
            .await
        } else {
            install::apply(&cluster, &objects, args.dry_run).await
        }
        .map_err(|e| failure(&e))?;
        let format = match global.output {
            OutputFormat::Json | OutputFormat::Yaml => global.output,
            _ => OutputFormat::Table,
        };
        let unchecked = changes.iter().filter(|c| c.action == "unchecked").count();
        Output::stdout(format).print(&Changes {
            changes,
            dry_run: args.dry_run,
        })?;
        if unchecked > 0 {
            Output::stderr(format).print_raw(&format!(
                "note: {unchecked} objects unchecked: namespace {} does not exist yet, and the \
                 API server checks nothing in it until it does\n",
                options.namespace
            ))?;
        }
        Ok(ExitCode::from(EXIT_OK))
    })
}

fn component(args: &InstallArgs) -> Result<Component, Failure> {
    match (args.controller, &args.rgd) {
        (Controller::Lead, None) => Ok(Component::Lead),
        (Controller::Lead, Some(_)) => Err(Failure::usage("--rgd is for reconcile-controller")),
        (Controller::ReconcileController, None) => Err(Failure::usage(
            "reconcile-controller needs the graph it reconciles: --rgd FILE",
        )
        .hint("kubectl zen install reconcile-controller --rgd examples/rgd/web-app.yaml")),
        (Controller::ReconcileController, Some(path)) => {
            let catalog = super::graph::catalog(&args.crd)?;
            Component::reconcile_file(path, &catalog).map_err(|e| failure(&e))
        }
    }
}

fn failure(error: &InstallError) -> Failure {
    let failure = Failure::new(error.to_string());
    match error {
        InstallError::Load(error) => super::graph::load_failure(error),
        InstallError::Graph(_) => {
            failure.hint("kubectl zen graph validate RGD shows every problem with its hint")
        }
        InstallError::Options(message) => {
            Failure::usage(message.clone()).hint("kubectl zen install --help")
        }
        InstallError::TooLarge { .. } => {
            failure.hint("move large data out of the graph's templates, or split the graph")
        }
        InstallError::Elsewhere { name, namespace } => failure.hint(format!(
            "to move it, remove that install first: kubectl zen install {} -n {namespace} --uninstall",
            if name == "zen-lead" { "lead" } else { "reconcile-controller --rgd FILE" }
        )),
        InstallError::InstancesHeld { .. } => failure.hint(
            "--instances delete deletes them and their objects in order first; --instances orphan releases them and keeps everything",
        ),
        InstallError::Api { .. } => failure,
    }
}

/// The manifests as a YAML stream, or a JSON `List`.
fn print_manifests(objects: &[Json], format: OutputFormat) -> Result<ExitCode, Failure> {
    let text = if format == OutputFormat::Json {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        serde_json::to_string_pretty(&list).map_err(|e| Failure::new(e.to_string()))? + "\n"
    } else {
        install::to_yaml(objects).map_err(|e| Failure::new(e.to_string()))?
    };
    Output::stdout(format).print_raw(&text)?;
    Ok(ExitCode::from(EXIT_OK))
}

#[derive(Debug, Serialize)]
struct Changes {
    changes: Vec<install::Change>,
    #[serde(rename = "dryRun")]
    dry_run: bool,
}

impl Tabular for Changes {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("OBJECT"),
            Column::new("NAMESPACE"),
            Column::new("ACTION"),
        ]);
        let suffix = if self.dry_run { " (dry run)" } else { "" };
        for change in &self.changes {
            let tone = match change.action {
                "deleted" => Tone::Warning,
                "kept" | "unchecked" => Tone::Muted,
                _ => Tone::Good,
            };
            table.push_row(vec![
                format!("{}/{}", change.kind.to_lowercase(), change.name).into(),
                if change.namespace.is_empty() {
                    "-"
                } else {
                    &change.namespace
                }
                .into(),
                Cell::toned(format!("{}{suffix}", change.action), tone),
            ]);
        }
        if self.changes.is_empty() {
            table.push_row(vec!["nothing to do".into(), "-".into(), "-".into()]);
        }
        table
    }
}
