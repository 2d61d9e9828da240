//! Catalogue loading: invalid integrations are reported without refusing the valid ones, and
//! a live catalogue picks up edits on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use flagstaff_manifest::{Catalogue, LintOptions, LiveCatalogue};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/base-integration")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn break_manifest(dir: &Path) {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "\"overview\": \"Sends signed change events to a webhook.\"",
            "\"overview\": \"No period here\"",
        ),
    )
    .unwrap();
}

#[test]
fn invalid_integrations_do_not_block_valid_ones() {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), &root.path().join("good-one"));
    copy_dir(&fixture_dir(), &root.path().join("bad-one"));
    break_manifest(&root.path().join("bad-one"));
    let catalogue = Catalogue::load(&[root.path().to_path_buf()], &LintOptions::default());
    assert_eq!(catalogue.len(), 1);
    assert!(catalogue.get("good-one").is_some());
    assert_eq!(catalogue.rejected.len(), 1);
    assert_eq!(catalogue.rejected[0].key, "bad-one");
    assert_eq!(catalogue.rejected[0].diagnostics[0].rule, "overview-period");
}

#[test]
fn later_directories_override_earlier_ones() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), &first.path().join("hook"));
    copy_dir(&fixture_dir(), &second.path().join("hook"));
    let catalogue = Catalogue::load(
        &[first.path().to_path_buf(), second.path().to_path_buf()],
        &LintOptions::default(),
    );
    assert_eq!(catalogue.len(), 1);
    assert!(
        catalogue
            .get("hook")
            .unwrap()
            .dir
            .starts_with(second.path())
    );
    assert_eq!(catalogue.problems[0].rule, "catalogue-duplicate");
}

#[test]
fn live_catalogue_reloads_on_change() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("hook");
    copy_dir(&fixture_dir(), &dir);
    let live = Arc::new(LiveCatalogue::new(
        vec![root.path().to_path_buf()],
        LintOptions::default(),
        Vec::new(),
    ));
    assert_eq!(live.current().len(), 1);
    let (sender, receiver) = mpsc::channel();
    let _guard = live
        .watch(Duration::from_millis(100), move |catalogue| {
            let _ = sender.send((catalogue.len(), catalogue.rejected.len()));
        })
        .unwrap();
    let wait_for = |want: (usize, usize)| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match receiver.recv_timeout(left) {
                Ok(seen) if seen == want => return,
                Ok(_) => continue,
                Err(_) => panic!("catalogue never reached {want:?}"),
            }
        }
    };
    break_manifest(&dir);
    wait_for((0, 1));
    assert!(live.current().get("hook").is_none());
    copy_dir(&fixture_dir(), &dir);
    wait_for((1, 0));
    copy_dir(&fixture_dir(), &root.path().join("second-hook"));
    wait_for((2, 0));
    assert!(live.current().get("second-hook").is_some());
}
