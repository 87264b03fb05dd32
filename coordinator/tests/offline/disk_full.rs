//! The toy local run on a disk that fills up mid-run, then is freed (issue
//! 27, item 1): the run stops at once with a clear message (no job burns its
//! attempts, no empty report is left), the journal stays readable by every
//! command, and running the same command again after freeing space gives a
//! report byte-identical to an undisturbed run's. Needs `mount` (root): where
//! mounting is refused the test says so loudly and checks nothing.

use crate::adapt::{hub, repo};
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

/// A tmpfs mounted for the test's life, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir, _parent: parent }),
            other => {
                eprintln!(
                    "\n!!!!!!!! SKIPPED disk_full: cannot mount a tmpfs here ({}); run the test as root to check a full disk !!!!!!!!\n",
                    match other {
                        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                        Err(e) => e.to_string(),
                    }
                );
                None
            }
        }
    }

    fn grow(&self, size: &str) {
        let st = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.dir).status().unwrap();
        assert!(st.success(), "remounting {} failed", self.dir.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_toy(env: &Cluster, out: &Path) -> Output {
    let spec = repo().join("configs/benchmarks/toy.toml");
    env.coordinator(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

#[test]
fn a_disk_that_fills_mid_run_stops_it_cleanly_and_a_rerun_after_freeing_space_gives_the_undisturbed_report() {
    // The undisturbed run (shared with the adapt tests), and the lock that
    // keeps the toy world's users one at a time.
    let (undisturbed, _one) = hub();
    let reference = std::fs::read(undisturbed.dir().join("report.json")).unwrap();
    let env = Cluster::new("diskfull");
    // The toy run writes about 13 MB; 8 MB fills up part way.
    let Some(disk) = SmallDisk::mount("8m") else { return };
    let out = disk.dir.join("toy");

    let full = run_toy(&env, &out);
    let err = stderr(&full);
    assert_eq!(full.status.code(), Some(1), "a full disk ends the run with exit 1:\n{err}");
    assert!(err.contains("No space left on device") || err.contains("disk is full"), "the cause is named:\n{err}");
    assert!(err.contains("run the same command again"), "it says what to do:\n{err}");
    assert!(!err.contains("transient failure") && !err.contains("attempts"), "no job was retried for a full disk:\n{err}");
    let report = out.join("report.json");
    assert!(!report.exists() || std::fs::metadata(&report).unwrap().len() > 0, "no empty report.json");
    // The journal is whole: verify opens it (nothing bad, some results).
    let v = env.coordinator(&["verify", "toy", "--local", "--out", out.to_str().unwrap(), "--json"]);
    assert!(v.status.success(), "verify after the full disk:\n{}", stderr(&v));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["bad"].as_array().unwrap().len(), 0, "{v}");

    // Space is freed: the same command finishes the run.
    disk.grow("256m");
    let again = run_toy(&env, &out);
    assert!(again.status.success(), "the rerun after freeing space:\n{}", stderr(&again));
    assert_eq!(std::fs::read(&report).unwrap(), reference, "the report equals the undisturbed run's, byte for byte");

    // Every command opens the journal.
    let once_more = run_toy(&env, &out);
    assert!(once_more.status.success(), "run again:\n{}", stderr(&once_more));
    assert_eq!(std::fs::read(&report).unwrap(), reference);
    env.coordinator_ok(&["verify", "toy", "--local", "--out", out.to_str().unwrap()]);
    let hubs = env.coordinator_ok(&["hub", "list", "--local", "--root", disk.dir.to_str().unwrap(), "--json"]);
    assert!(hubs.contains("\"usable\": true"), "{hubs}");
    let classes = env.write_spec("classes.txt", "puppy\nsedan\n");
    env.coordinator_ok(&["select", "--local", "--hub", "toy", "--hub-dir", out.to_str().unwrap(), "--classes", classes.to_str().unwrap()]);
}
