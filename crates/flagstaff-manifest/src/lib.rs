//! LaunchDarkly integration-framework manifests: the typed model, the project's JSON Schema,
//! the lint, catalogue loading (with hot reload) and request preview.
//!
//! Everything here works on files and values only: no network, no database. The server
//! builds on [`Catalogue`] and [`preview`]; the `flagstaff integrations` CLI on [`lint_path`].

pub mod approval;
pub mod catalogue;
pub mod config;
pub mod context;
pub mod diagnostic;
mod edgegrid_check;
pub mod jsregex;
pub mod lint;
pub mod model;
pub mod preview;
pub mod schema;
pub mod synced_segment;
pub mod trigger;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flagstaff_template::Template;
use serde_json::Value;

pub use catalogue::{Catalogue, LiveCatalogue};
pub use context::SampleContexts;
pub use diagnostic::{Diagnostic, Severity};
pub use lint::LintOptions;
pub use model::Manifest;

/// Manifests larger than this are refused before parsing (the largest upstream is ~20 KB).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Every template of an integration, parsed once at load.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    /// Template files by the path the manifest uses (`templates/default.json.hbs`).
    pub files: BTreeMap<String, Template>,
    /// Inline templates by JSON pointer into the manifest.
    pub inline: BTreeMap<String, Template>,
}

/// A loaded, lint-clean (no errors) integration.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The directory name, which is the integration key.
    pub key: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The manifest as written, for API responses that return it unchanged.
    pub raw: Value,
    pub templates: TemplateSet,
    /// Findings that do not stop the integration from loading.
    pub warnings: Vec<Diagnostic>,
}

/// The outcome of loading one integration directory.
#[derive(Debug, Clone)]
pub struct IntegrationReport {
    pub key: String,
    pub dir: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// `Some` when there are no errors.
    pub integration: Option<Arc<Integration>>,
}

impl IntegrationReport {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads and lints one integration directory (`<dir>/manifest.json` plus its files).
pub fn load_integration(
    dir: &Path,
    samples: &SampleContexts,
    options: &LintOptions,
) -> IntegrationReport {
    let manifest = read_manifest_bytes(&dir.join("manifest.json"));
    load_integration_with(dir, manifest, samples, options)
}

/// Like [`load_integration`], with the manifest's bytes given instead of read from
/// `<dir>/manifest.json` (templates and icons still come from `dir`).
pub fn load_integration_from_bytes(
    dir: &Path,
    manifest: &[u8],
    samples: &SampleContexts,
    options: &LintOptions,
) -> IntegrationReport {
    let file = dir.join("manifest.json");
    let parsed = if manifest.len() as u64 > MAX_MANIFEST_BYTES {
        Err(too_large(&file, manifest.len() as u64))
    } else {
        parse_manifest(&file, manifest.to_vec())
    };
    load_integration_with(dir, parsed, samples, options)
}

fn load_integration_with(
    dir: &Path,
    manifest: Result<Value, Diagnostic>,
    samples: &SampleContexts,
    options: &LintOptions,
) -> IntegrationReport {
    let key = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest_file = dir.join("manifest.json");
    let mut linter = lint::Linter {
        key: &key,
        dir,
        manifest_file: manifest_file.clone(),
        samples,
        options,
        diagnostics: Vec::new(),
    };
    let finish =
        |diagnostics: Vec<Diagnostic>, integration: Option<Integration>| IntegrationReport {
            key: key.clone(),
            dir: dir.to_path_buf(),
            diagnostics,
            integration: integration.map(Arc::new),
        };
    let raw = match manifest {
        Ok(raw) => raw,
        Err(diagnostic) => return finish(vec![diagnostic], None),
    };
    let Some(manifest) = linter.check_schema(&raw) else {
        return finish(linter.diagnostics, None);
    };
    linter.check_manifest(&manifest);
    let templates = linter.check_templates(&manifest, &raw);
    let diagnostics = linter.diagnostics;
    if diagnostics.iter().any(Diagnostic::is_error) {
        return finish(diagnostics, None);
    }
    let integration = Integration {
        key: key.clone(),
        dir: dir.to_path_buf(),
        manifest,
        raw,
        templates,
        warnings: diagnostics.clone(),
    };
    finish(diagnostics, Some(integration))
}

fn too_large(file: &Path, len: u64) -> Diagnostic {
    Diagnostic::error(
        "manifest-json",
        file,
        "",
        format!("manifest.json is {len} bytes; the limit is {MAX_MANIFEST_BYTES}"),
    )
}

fn read_manifest_bytes(file: &Path) -> Result<Value, Diagnostic> {
    let error = |message: String| Diagnostic::error("manifest-json", file, "", message);
    let metadata = std::fs::metadata(file).map_err(|io| {
        error(format!(
            "cannot read manifest.json ({io}): every integration directory needs one"
        ))
    })?;
    if metadata.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(file, metadata.len()));
    }
    let bytes = std::fs::read(file).map_err(|io| error(format!("cannot read: {io}")))?;
    parse_manifest(file, bytes)
}

fn parse_manifest(file: &Path, bytes: Vec<u8>) -> Result<Value, Diagnostic> {
    let error = |message: String| Diagnostic::error("manifest-json", file, "", message);
    let text = String::from_utf8(bytes).map_err(|utf8| {
        error(format!(
            "manifest.json is not valid UTF-8 (at byte {})",
            utf8.utf8_error().valid_up_to()
        ))
    })?;
    serde_json::from_str::<Value>(&text).map_err(|json| {
        error(format!(
            "manifest.json is not valid JSON: {} at line {}, column {}",
            json_error_text(&json),
            json.line(),
            json.column()
        ))
    })
}

fn json_error_text(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(index) => text[..index].to_string(),
        None => text,
    }
}

/// The integration directories under a path: the path itself when it holds a
/// `manifest.json`, else its `integrations/` folder (an upstream checkout), else its
/// subdirectories.
pub fn integration_dirs(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if path.join("manifest.json").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let root = if path.join("integrations").is_dir() {
        path.join("integrations")
    } else {
        path.to_path_buf()
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The result of linting a catalogue or a single integration.
#[derive(Debug, Clone, Default)]
pub struct LintReport {
    pub integrations: Vec<IntegrationReport>,
    /// Catalogue-wide findings (e.g. a shared `oauthIntegrationKey`).
    pub catalogue: Vec<Diagnostic>,
    pub samples: Option<PathBuf>,
}

impl LintReport {
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.integrations
            .iter()
            .flat_map(|report| report.diagnostics.iter())
            .chain(self.catalogue.iter())
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics().filter(|d| !d.is_error()).count()
    }
}

/// Lints a catalogue directory or one integration directory.
pub fn lint_path(
    path: &Path,
    samples: Option<&SampleContexts>,
    options: &LintOptions,
) -> std::io::Result<LintReport> {
    let dirs = integration_dirs(path)?;
    let discovered;
    let samples = match samples {
        Some(samples) => samples,
        None => {
            let root = if dirs.len() == 1 && dirs[0] == path {
                path.parent().unwrap_or(path)
            } else {
                path
            };
            discovered = SampleContexts::discover(root);
            &discovered
        }
    };
    let integrations = load_all(&dirs, samples, options);
    let loaded: Vec<Integration> = integrations
        .iter()
        .filter_map(|report| report.integration.as_deref().cloned())
        .collect();
    let catalogue = lint::check_oauth_keys_unique(&loaded);
    Ok(LintReport {
        integrations,
        catalogue,
        samples: samples.source.clone(),
    })
}

/// Loads integration directories, spreading the work over the machine's cores.
pub(crate) fn load_all(
    dirs: &[PathBuf],
    samples: &SampleContexts,
    options: &LintOptions,
) -> Vec<IntegrationReport> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(dirs.len().max(1));
    if workers <= 1 {
        return dirs
            .iter()
            .map(|dir| load_integration(dir, samples, options))
            .collect();
    }
    let chunk = dirs.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = dirs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|dir| load_integration(dir, samples, options))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}
