//! Arbitrary bytes as an integration's manifest.json: loading and linting must never panic
//! or hang, whatever the input (the integration directory holds the valid fixture's icons and
//! templates, so inputs that get past the schema exercise the template rules too).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use flagstaff_manifest::{LintOptions, SampleContexts, load_integration_from_bytes};
use libfuzzer_sys::fuzz_target;

struct Setup {
    _root: tempfile::TempDir,
    dir: PathBuf,
    samples: SampleContexts,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("fuzzed");
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/base-integration");
        copy(&fixture, &dir);
        Setup {
            _root: root,
            dir,
            samples: SampleContexts::builtin(),
        }
    })
}

fn copy(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let _ = load_integration_from_bytes(&setup.dir, data, &setup.samples, &LintOptions::default());
});
