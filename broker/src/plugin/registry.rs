//! The plugins the broker knows, by name: which router serves each exchange type and which
//! filter each consumer may name; where each came from (embedded or a file), and what went
//! wrong with files that failed to load.
//!
//! Rules a user can rely on:
//! - A file whose plugin has the name of an embedded plugin overrides it; removing the file
//!   brings the embedded one back.
//! - Two files may not provide the same name: the second is refused and reported.
//! - A new version replaces the old one only after every exchange and binding (or every
//!   compiled filter) has been replayed into it; otherwise the old one keeps serving.
//! - Removing the file of a plugin that exchanges or consumers still use keeps it loaded,
//!   with a warning, until they are gone and the directory changes again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use super::builtin::EMBEDDED_PLUGINS;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::filter::FilterPlugin;
use super::info::{PluginHealth, PluginInfo, PluginKind, PluginSource, PluginStatus};
use super::limits::PluginLimits;
use super::loader::{LoadedVersion, load_version};
use super::router::RouterPlugin;

/// How the plugin host is set up.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {
    pub limits: PluginLimits,
    /// Where compiled plugins are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

/// What happened the last time a file in the plugin directory was loaded.
#[derive(Debug, Clone)]
struct FileRecord {
    digest: [u8; 32],
    /// The plugin the file provides, once it loaded.
    plugin: Option<(PluginKind, String)>,
    error: Option<String>,
}

/// Every loaded plugin, by kind and name.
pub struct PluginRegistry {
    engine: Arc<PluginEngine>,
    routers: RwLock<HashMap<String, Arc<RouterPlugin>>>,
    filters: RwLock<HashMap<String, Arc<FilterPlugin>>>,
    /// Serialises installs and removals; held while a new version is prepared.
    files: Mutex<HashMap<PathBuf, FileRecord>>,
    /// Plugins whose file is gone but which are still in use.
    orphaned: Mutex<HashMap<String, PathBuf>>,
    /// The embedded plugins' code by plugin name, to restore one when its override goes.
    embedded: Mutex<HashMap<String, &'static [u8]>>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("routers", &self.routers.read().keys().collect::<Vec<_>>())
            .field("filters", &self.filters.read().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// An empty registry; call [`load_embedded`](Self::load_embedded) for the standard plugins.
    pub fn new(config: PluginConfig) -> Result<Arc<Self>, PluginError> {
        let engine = PluginEngine::new(config.limits, config.cache_dir)?;
        Ok(Arc::new(PluginRegistry {
            engine,
            routers: RwLock::new(HashMap::new()),
            filters: RwLock::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            orphaned: Mutex::new(HashMap::new()),
            embedded: Mutex::new(HashMap::new()),
        }))
    }

    /// Loads the standard plugins built into the broker. A plugin directory loaded afterwards
    /// may override any of them.
    pub fn load_embedded(&self) -> Result<(), PluginError> {
        let _files = self.files.lock();
        for (crate_name, wasm) in EMBEDDED_PLUGINS {
            let origin = format!("embedded plugin {crate_name}");
            let loaded = load_version(&self.engine, wasm, PluginSource::Embedded, &origin)?;
            let info = self.install(loaded, &origin)?;
            self.embedded.lock().insert(info.name, wasm);
        }
        Ok(())
    }

    /// The router serving exchange type `name`.
    pub fn router(&self, name: &str) -> Result<Arc<RouterPlugin>, PluginError> {
        self.routers
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound {
                kind: "router",
                name: name.to_owned(),
            })
    }

    /// The filter plugin called `name`.
    pub fn filter(&self, name: &str) -> Result<Arc<FilterPlugin>, PluginError> {
        self.filters
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound {
                kind: "filter",
                name: name.to_owned(),
            })
    }

    /// Loads (or reloads) the plugin in `path` unless its contents are unchanged since the last
    /// attempt. On failure the error is recorded for the plugin list and returned; whatever
    /// served before keeps serving.
    pub fn load_file(&self, path: &Path) -> Result<Option<PluginInfo>, PluginError> {
        let wasm = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.to_owned(),
            source: source.into(),
        })?;
        let digest: [u8; 32] = Sha256::digest(&wasm).into();
        let mut files = self.files.lock();
        if files.get(path).is_some_and(|r| r.digest == digest) {
            return Ok(None);
        }
        let origin = path.display().to_string();
        let previous = files.get(path).and_then(|r| r.plugin.clone());
        let result = load_version(
            &self.engine,
            &wasm,
            PluginSource::File(path.to_owned()),
            &origin,
        )
        .and_then(|loaded| {
            let provided = (loaded.kind(), loaded.name().to_owned());
            self.check_file_conflict(&files, path, &provided, &origin)?;
            let info = self.install(loaded, &origin)?;
            Ok((provided, info))
        });
        match result {
            Ok((provided, info)) => {
                if let Some(previous) = previous.filter(|p| *p != provided) {
                    self.withdraw(&previous, path);
                }
                self.orphaned.lock().remove(&provided.1);
                files.insert(
                    path.to_owned(),
                    FileRecord {
                        digest,
                        plugin: Some(provided),
                        error: None,
                    },
                );
                tracing::info!(path = %path.display(), plugin = info.name.as_str(), version = info.version.as_str(), "plugin loaded");
                Ok(Some(info))
            }
            Err(error) => {
                tracing::error!(path = %path.display(), error = %error, "plugin not loaded; the previous version, if any, keeps serving");
                files.insert(
                    path.to_owned(),
                    FileRecord {
                        digest,
                        plugin: previous,
                        error: Some(error.to_string()),
                    },
                );
                Err(error)
            }
        }
    }

    /// Installs a component a client sent into the plugin directory `dir` and loads it: over
    /// the file that serves a plugin of the same name, or as `<name>.wasm`. The component is
    /// checked before anything is written, the file replaced atomically, and the answer given
    /// once the new version serves (or why it does not). Blocks on compiling and on the disk.
    pub fn install_upload(&self, dir: &Path, wasm: &[u8]) -> Result<PluginInfo, PluginError> {
        let origin = "uploaded plugin";
        let loaded = load_version(&self.engine, wasm, PluginSource::Uploaded, origin)?;
        let provided = (loaded.kind(), loaded.name().to_owned());
        drop(loaded);
        let path = self
            .serving_file(&provided)
            .unwrap_or_else(|| dir.join(format!("{}.wasm", provided.1)));
        let io_error = |source: std::io::Error| PluginError::Io {
            path: path.clone(),
            source: source.into(),
        };
        let previous = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error(error)),
        };
        write_atomically(&path, wasm).map_err(io_error)?;
        // The directory watcher may load the file first; then this finds it unchanged and
        // reports what the watcher loaded.
        match self.load_file(&path) {
            Ok(Some(info)) => return Ok(info),
            Ok(None) => {}
            Err(error) => {
                // The old version still serves: put its file back, so a restart loads it too.
                let restored = match &previous {
                    Some(bytes) => write_atomically(&path, bytes).map(|()| {
                        let _ = self.load_file(&path);
                    }),
                    None => std::fs::remove_file(&path).map(|()| self.remove_file(&path)),
                };
                if let Err(restore_error) = restored {
                    tracing::error!(path = %path.display(), error = %restore_error, "could not restore the plugin file after a failed install");
                }
                return Err(error);
            }
        }
        let files = self.files.lock();
        match files.get(&path) {
            Some(FileRecord {
                error: Some(error), ..
            }) => Err(PluginError::BadInfo {
                origin: path.display().to_string(),
                reason: error.clone(),
            }),
            _ => {
                drop(files);
                self.info_of(&provided)
            }
        }
    }

    /// Runs `wasm`, a new version of router `name`, as its shadow (see `shadow.rs`).
    pub fn start_shadow(
        &self,
        name: &str,
        wasm: Arc<[u8]>,
        sample_percent: u8,
    ) -> Result<PluginInfo, PluginError> {
        let router = self.router(name)?;
        let origin = "uploaded shadow";
        match load_version(&self.engine, &wasm, PluginSource::Uploaded, origin)? {
            LoadedVersion::Router(version) if version.info.name == name => {
                let info = version.info.clone();
                router.start_shadow(version, wasm, sample_percent)?;
                Ok(info)
            }
            loaded => Err(PluginError::BadInfo {
                origin: origin.to_owned(),
                reason: format!(
                    "it is the {} {:?}, not a new version of the router {name:?}",
                    loaded.kind(),
                    loaded.name()
                ),
            }),
        }
    }

    /// Makes the shadow of router `name` the serving version: installs its component into the
    /// plugin directory `dir` as [`install_upload`](Self::install_upload) does.
    pub fn promote_shadow(&self, dir: &Path, name: &str) -> Result<PluginInfo, PluginError> {
        let router = self.router(name)?;
        let wasm = router.stop_shadow().ok_or_else(|| PluginError::NoShadow {
            plugin: name.to_owned(),
        })?;
        self.install_upload(dir, &wasm)
    }

    /// Stops the shadow of router `name` without changing what serves.
    pub fn discard_shadow(&self, name: &str) -> Result<(), PluginError> {
        self.router(name)?
            .stop_shadow()
            .map(drop)
            .ok_or_else(|| PluginError::NoShadow {
                plugin: name.to_owned(),
            })
    }

    /// The file the plugin `provided` is served from, if a file serves it.
    fn serving_file(&self, provided: &(PluginKind, String)) -> Option<PathBuf> {
        let source = match provided.0 {
            PluginKind::Router => self.routers.read().get(&provided.1).map(|r| r.source()),
            PluginKind::Filter => self.filters.read().get(&provided.1).map(|f| f.source()),
        };
        match source {
            Some(PluginSource::File(path)) => Some(path),
            _ => None,
        }
    }

    fn info_of(&self, provided: &(PluginKind, String)) -> Result<PluginInfo, PluginError> {
        match provided.0 {
            PluginKind::Router => self.router(&provided.1).map(|r| r.info()),
            PluginKind::Filter => self.filter(&provided.1).map(|f| f.info()),
        }
    }

    /// The file at `path` is gone: withdraw its plugin (see the module rules).
    pub fn remove_file(&self, path: &Path) {
        let mut files = self.files.lock();
        let Some(record) = files.remove(path) else {
            return;
        };
        if let Some(provided) = record.plugin {
            self.withdraw(&provided, path);
        }
    }

    /// Files this registry has loaded or tried to load.
    pub fn known_files(&self) -> Vec<PathBuf> {
        self.files.lock().keys().cloned().collect()
    }

    /// One row per plugin, plus one per file that failed to load and provides nothing.
    pub fn list(&self) -> Vec<PluginStatus> {
        let files = self.files.lock();
        let errors: HashMap<&str, &str> = files
            .values()
            .filter_map(|r| Some((r.plugin.as_ref()?.1.as_str(), r.error.as_deref()?)))
            .collect();
        let orphaned = self.orphaned.lock();
        let mut rows = Vec::new();
        for router in self.routers.read().values() {
            rows.push(status_row(
                PluginKind::Router,
                router.info(),
                router.source(),
                router.faults(),
                router.loaded_at(),
                &errors,
                &orphaned,
            ));
        }
        for filter in self.filters.read().values() {
            rows.push(status_row(
                PluginKind::Filter,
                filter.info(),
                filter.source(),
                filter.faults(),
                filter.loaded_at(),
                &errors,
                &orphaned,
            ));
        }
        for (path, record) in files.iter() {
            if let (None, Some(error)) = (&record.plugin, &record.error) {
                rows.push(PluginStatus {
                    name: path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    kind: None,
                    version: None,
                    description: None,
                    source: PluginSource::File(path.clone()),
                    health: PluginHealth::Failed,
                    last_error: Some(error.clone()),
                    total_faults: 0,
                    loaded_at: None,
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    fn check_file_conflict(
        &self,
        files: &HashMap<PathBuf, FileRecord>,
        path: &Path,
        provided: &(PluginKind, String),
        origin: &str,
    ) -> Result<(), PluginError> {
        let other_file = files
            .iter()
            .find(|(p, r)| p.as_path() != path && r.plugin.as_ref() == Some(provided));
        if let Some((other, _)) = other_file {
            return Err(PluginError::Conflict {
                origin: origin.to_owned(),
                name: provided.1.clone(),
                existing: other.display().to_string(),
            });
        }
        let (kind, name) = provided;
        let clash = match kind {
            PluginKind::Router => self.filters.read().contains_key(name),
            PluginKind::Filter => self.routers.read().contains_key(name),
        };
        if clash {
            return Err(PluginError::Conflict {
                origin: origin.to_owned(),
                name: name.clone(),
                existing: format!("a {} plugin of that name", kind_other(*kind)),
            });
        }
        Ok(())
    }

    /// Adds a new plugin or replaces a loaded one with this version.
    fn install(&self, loaded: LoadedVersion, origin: &str) -> Result<PluginInfo, PluginError> {
        match loaded {
            LoadedVersion::Router(version) => {
                let info = version.info.clone();
                let existing = self.routers.read().get(&info.name).cloned();
                match existing {
                    Some(router) => router.replace(version)?,
                    None => {
                        let router = RouterPlugin::new(Arc::clone(&self.engine), version);
                        self.routers
                            .write()
                            .insert(info.name.clone(), Arc::new(router));
                    }
                }
                tracing::debug!(origin, plugin = info.name.as_str(), "router installed");
                Ok(info)
            }
            LoadedVersion::Filter(version) => {
                let info = version.info.clone();
                let existing = self.filters.read().get(&info.name).cloned();
                match existing {
                    Some(filter) => filter.replace(version)?,
                    None => {
                        let filter = FilterPlugin::new(Arc::clone(&self.engine), version);
                        self.filters
                            .write()
                            .insert(info.name.clone(), Arc::new(filter));
                    }
                }
                tracing::debug!(origin, plugin = info.name.as_str(), "filter installed");
                Ok(info)
            }
        }
    }

    /// The file that provided `provided` no longer does.
    fn withdraw(&self, provided: &(PluginKind, String), path: &Path) {
        let (kind, name) = provided;
        let served_from_this_file = match kind {
            PluginKind::Router => self.routers.read().get(name).map(|r| r.source()),
            PluginKind::Filter => self.filters.read().get(name).map(|f| f.source()),
        } == Some(PluginSource::File(path.to_owned()));
        if !served_from_this_file {
            return;
        }
        if let Some(embedded) = self.restore_embedded(name) {
            match embedded {
                Ok(()) => {
                    tracing::info!(plugin = name.as_str(), path = %path.display(), "plugin file removed; the embedded version serves again")
                }
                Err(error) => {
                    tracing::error!(plugin = name.as_str(), error = %error, "could not restore the embedded plugin; the removed file's version keeps serving")
                }
            }
            return;
        }
        let in_use = match kind {
            PluginKind::Router => self
                .routers
                .read()
                .get(name)
                .map_or(0, |r| r.exchange_count()),
            PluginKind::Filter => self
                .filters
                .read()
                .get(name)
                .map_or(0, |f| f.expression_count()),
        };
        if in_use > 0 {
            tracing::warn!(plugin = name.as_str(), path = %path.display(), in_use, "plugin file removed but still in use; it stays loaded");
            self.orphaned.lock().insert(name.clone(), path.to_owned());
            return;
        }
        match kind {
            PluginKind::Router => drop(self.routers.write().remove(name)),
            PluginKind::Filter => drop(self.filters.write().remove(name)),
        }
        self.orphaned.lock().remove(name);
        tracing::info!(plugin = name.as_str(), path = %path.display(), "plugin unloaded");
    }

    /// Reinstalls the embedded plugin called `name`, if there is one.
    fn restore_embedded(&self, name: &str) -> Option<Result<(), PluginError>> {
        let wasm = *self.embedded.lock().get(name)?;
        let origin = format!("embedded plugin {name}");
        Some(
            load_version(&self.engine, wasm, PluginSource::Embedded, &origin)
                .and_then(|loaded| self.install(loaded, &origin))
                .map(drop),
        )
    }
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, never a part:
/// a hidden temporary file beside it (the directory watcher ignores it), synced, renamed over
/// `path`, and the directory synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = dir.join(format!(".{name}.upload"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn kind_other(kind: PluginKind) -> PluginKind {
    match kind {
        PluginKind::Router => PluginKind::Filter,
        PluginKind::Filter => PluginKind::Router,
    }
}

fn status_row(
    kind: PluginKind,
    info: PluginInfo,
    source: PluginSource,
    faults: super::quarantine::FaultReport,
    loaded_at: std::time::SystemTime,
    load_errors: &HashMap<&str, &str>,
    orphaned: &HashMap<String, PathBuf>,
) -> PluginStatus {
    let health = if faults.quarantined_for.is_some() {
        PluginHealth::Quarantined
    } else if orphaned.contains_key(&info.name) {
        PluginHealth::Orphaned
    } else {
        PluginHealth::Serving
    };
    let last_error = load_errors
        .get(info.name.as_str())
        .map(|e| (*e).to_owned())
        .or(faults.last_fault);
    PluginStatus {
        name: info.name,
        kind: Some(kind),
        version: Some(info.version),
        description: Some(info.description),
        source,
        health,
        last_error,
        total_faults: faults.total_faults,
        loaded_at: Some(loaded_at),
    }
}
