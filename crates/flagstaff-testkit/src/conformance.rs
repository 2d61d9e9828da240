//! Locating the third-party conformance data (`shared/conformance`), which is read in place and
//! never copied into the repository.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the conformance directory.
pub const CONFORMANCE_DIR_ENV: &str = "FLAGSTAFF_CONFORMANCE_DIR";

/// The workspace root (two levels above this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.join("../.."))
}

/// The conformance data directory: `$FLAGSTAFF_CONFORMANCE_DIR` when set (and non-empty),
/// otherwise `<workspace root>/../shared/conformance`.
///
/// # Panics
///
/// When the directory does not exist, naming the path it tried.
pub fn conformance_dir() -> PathBuf {
    let (dir, source) = match std::env::var_os(CONFORMANCE_DIR_ENV) {
        Some(v) if !v.is_empty() => (PathBuf::from(v), format!("from ${CONFORMANCE_DIR_ENV}")),
        _ => (
            workspace_root()
                .join("..")
                .join("shared")
                .join("conformance"),
            format!(
                "default: <workspace root>/../shared/conformance; set ${CONFORMANCE_DIR_ENV} to override"
            ),
        ),
    };
    if !dir.is_dir() {
        panic!(
            "conformance data directory not found: tried {} ({source})",
            dir.display()
        );
    }
    dir
}

/// A file or directory inside the conformance directory.
///
/// # Panics
///
/// When the conformance directory or the file is missing, naming the path it tried.
pub fn conformance_path(relative: impl AsRef<Path>) -> PathBuf {
    let path = conformance_dir().join(relative.as_ref());
    if !path.exists() {
        panic!("conformance data file not found: tried {}", path.display());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_openapi_description() {
        let p = conformance_path("ld-openapi/ld-openapi.json");
        assert!(p.is_file(), "{}", p.display());
    }
}
