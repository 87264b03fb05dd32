//! The embedded store's journal on a disk that fills up and is then freed
//! (issue 27, item 1), on a real tmpfs: a failed append acknowledges nothing
//! and leaves no partial record, so the job commits once space is back and
//! the journal reads back whole. Needs `mount` (root); where mounting is
//! refused the test says so loudly and passes without checking anything.

use mll_common::store::embedded::EmbeddedStore;
use mll_common::store::{CommitOutcome, Committer, Ledger, StoreError};
use mll_common::{JobId, RunId, Stage};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test's life, unmounted on drop.
pub struct SmallDisk {
    pub dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (mount's syntax, e.g. `64k`); None, with a
    /// loud message, where mounting is not allowed.
    pub fn mount(size: &str, test: &str) -> Option<SmallDisk> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir, _parent: parent }),
            other => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED {test}: cannot mount a tmpfs here ({}); run the test as root to check it !!!!!!!!\n",
                    match other {
                        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                        Err(e) => e.to_string(),
                    }
                );
                None
            }
        }
    }

    /// Gives the disk `size` (space freed).
    pub fn grow(&self, size: &str) {
        let st = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.dir).status().unwrap();
        assert!(st.success(), "remounting {} failed", self.dir.display());
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[tokio::test]
async fn a_failed_append_acknowledges_nothing_and_leaves_no_partial_record() {
    let Some(disk) = SmallDisk::mount("64k", "a_failed_append_acknowledges_nothing_and_leaves_no_partial_record") else { return };
    let path = disk.path("state.journal");
    let run = RunId::new("full").unwrap();
    let jobs: Vec<JobId> = (0..40).map(|i| JobId::derive(&run, &[&i.to_string()])).collect();
    let result = |i: usize| vec![i as u8; 9_000];
    let store = EmbeddedStore::open(&path).unwrap();
    store.expect(&run, Stage::Evaluate, &jobs).await.unwrap();

    // Commit until the disk is full.
    let mut full_at = None;
    for (i, job) in jobs.iter().enumerate() {
        let before = file_len(&path);
        match store.commit(&run, Stage::Evaluate, job, &result(i)).await {
            Ok(outcome) => assert_eq!(outcome, CommitOutcome::Committed),
            Err(e) => {
                assert!(matches!(e, StoreError::DiskFull { .. }), "a full disk is named as such: {e}");
                assert!(!e.is_retriable(), "a full disk is not retried as if it were passing");
                assert!(e.to_string().contains("disk is full") && e.to_string().contains("Free space"), "{e}");
                assert_eq!(file_len(&path), before, "the partial record was cut off");
                full_at = Some(i);
                break;
            }
        }
    }
    let i = full_at.expect("the 64 KiB disk filled up");
    let job = &jobs[i];
    assert!(!store.is_done(&run, Stage::Evaluate, job).await.unwrap(), "a commit that was not journaled is not done");
    assert_eq!(store.result(&run, job).await.unwrap(), None);

    // Space comes back: the same job commits (not "first result stands"),
    // and so do the next ones.
    disk.grow("4m");
    assert_eq!(store.commit(&run, Stage::Evaluate, job, &result(i)).await.unwrap(), CommitOutcome::Committed);
    store.commit(&run, Stage::Evaluate, &jobs[i + 1], &result(i + 1)).await.unwrap();
    drop(store);

    // The journal reads back whole: every commit, nothing damaged.
    let store = EmbeddedStore::open(&path).unwrap();
    assert!(store.damaged().is_empty());
    for (k, j) in jobs.iter().enumerate().take(i + 2) {
        assert_eq!(store.result(&run, j).await.unwrap(), Some(result(k)), "job {k}");
    }
    assert_eq!(store.progress(&run, Stage::Evaluate).await.unwrap().done, i as u64 + 2);
}
