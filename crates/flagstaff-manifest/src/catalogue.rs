//! The integration catalogue the server runs on: many directories loaded at once, errors
//! reported per integration without refusing the valid ones, and hot reload on change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{Diagnostic, Integration, IntegrationReport, LintOptions, SampleContexts};

/// One consistent snapshot of every loaded integration.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    integrations: BTreeMap<String, Arc<Integration>>,
    /// Integrations that failed to load, with their findings.
    pub rejected: Vec<IntegrationReport>,
    /// Directory-level problems (unreadable directory, duplicate key across directories).
    pub problems: Vec<Diagnostic>,
}

impl Catalogue {
    /// Loads every integration under each directory (catalogue or integration directories).
    /// A later directory's integration replaces an earlier one with the same key, so a user's
    /// own directory can override the bundled catalogue; the replacement is reported.
    pub fn load(dirs: &[PathBuf], options: &LintOptions) -> Catalogue {
        let mut catalogue = Catalogue::default();
        for dir in dirs {
            catalogue.add_dir(dir, options);
        }
        catalogue
    }

    fn add_dir(&mut self, dir: &Path, options: &LintOptions) {
        let integration_dirs = match crate::integration_dirs(dir) {
            Ok(dirs) => dirs,
            Err(error) => {
                self.problems.push(Diagnostic::error(
                    "catalogue-dir",
                    dir,
                    "",
                    format!("cannot read the integrations directory: {error}"),
                ));
                return;
            }
        };
        let samples = SampleContexts::discover(dir);
        for report in crate::load_all(&integration_dirs, &samples, options) {
            match &report.integration {
                Some(integration) => {
                    let previous = self
                        .integrations
                        .insert(integration.key.clone(), integration.clone());
                    if let Some(previous) = previous {
                        self.problems.push(Diagnostic::warning(
                            "catalogue-duplicate",
                            integration.dir.join("manifest.json"),
                            "",
                            format!(
                                "integration `{}` replaces the one loaded from {}",
                                integration.key,
                                previous.dir.display()
                            ),
                        ));
                    }
                }
                None => self.rejected.push(report),
            }
        }
    }

    /// Adds an integration built elsewhere (e.g. one embedded in the binary).
    pub fn insert(&mut self, integration: Integration) {
        self.integrations
            .insert(integration.key.clone(), Arc::new(integration));
    }

    pub fn get(&self, key: &str) -> Option<&Arc<Integration>> {
        self.integrations.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Integration>> {
        self.integrations.values()
    }

    pub fn len(&self) -> usize {
        self.integrations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.integrations.is_empty()
    }
}

/// A catalogue that reloads itself when files under its directories change. Readers take a
/// cheap snapshot (`current()`) and keep a consistent view while a reload swaps in the next.
pub struct LiveCatalogue {
    current: RwLock<Arc<Catalogue>>,
    dirs: Vec<PathBuf>,
    options: LintOptions,
    extra: Vec<Integration>,
}

impl LiveCatalogue {
    /// Loads the directories, then adds `extra` (integrations that are not on disk, such as
    /// first-party ones embedded in the binary, which directories cannot replace).
    pub fn new(dirs: Vec<PathBuf>, options: LintOptions, extra: Vec<Integration>) -> LiveCatalogue {
        let live = LiveCatalogue {
            current: RwLock::new(Arc::new(Catalogue::default())),
            dirs,
            options,
            extra,
        };
        live.reload();
        live
    }

    pub fn current(&self) -> Arc<Catalogue> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Loads everything again and swaps it in; returns the new snapshot.
    pub fn reload(&self) -> Arc<Catalogue> {
        let mut catalogue = Catalogue::load(&self.dirs, &self.options);
        for integration in &self.extra {
            catalogue.insert(integration.clone());
        }
        let catalogue = Arc::new(catalogue);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = catalogue.clone();
        catalogue
    }

    /// Watches the directories and reloads after changes settle (`debounce` without further
    /// events), calling `on_reload` with each new snapshot. The returned guard stops the
    /// watching when dropped.
    pub fn watch(
        self: &Arc<Self>,
        debounce: Duration,
        on_reload: impl Fn(&Catalogue) + Send + 'static,
    ) -> notify::Result<WatchGuard> {
        let (sender, receiver) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|event| !event.kind.is_access()) {
                    let _ = sender.send(());
                }
            })?;
        for dir in &self.dirs {
            watcher.watch(dir, RecursiveMode::Recursive)?;
        }
        let live = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("catalogue-watch".into())
            .spawn(move || {
                while receiver.recv().is_ok() {
                    // Coalesce a burst of file events (an editor save, a git checkout).
                    while receiver.recv_timeout(debounce).is_ok() {}
                    let Some(live) = live.upgrade() else { return };
                    let catalogue = live.reload();
                    on_reload(&catalogue);
                }
            })
            .map_err(|error| notify::Error::generic(&error.to_string()))?;
        Ok(WatchGuard {
            _watcher: Box::new(watcher),
            _thread: thread,
        })
    }
}

/// Keeps a catalogue watch alive; dropping it stops the watcher, which ends the thread.
pub struct WatchGuard {
    _watcher: Box<dyn Watcher + Send>,
    _thread: std::thread::JoinHandle<()>,
}
