//! Local mode without services: a damaged record of state.journal is named
//! and its job computed again; a damaged length field stops with its offset;
//! bad specs exit 2 naming the key, before anything is scanned or run; Ctrl-C
//! exits 130.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_local(c: &Cluster, spec: &Path, out: &Path) -> Output {
    c.coordinator(&["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

/// Frames of a journal (see common/src/store/embedded.rs): 8 header bytes,
/// then per record a u32 length, 4 check bytes and the sealed body (1 format
/// byte, 8 checksum bytes, the bincode record whose first u32 is its kind).
fn frames(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 8 <= buf.len() {
        let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, 8 + len));
        pos += 8 + len;
    }
    out
}

const COMMIT_RECORD: [u8; 4] = [3, 0, 0, 0];

#[test]
fn a_damaged_journal_record_is_recomputed_and_a_damaged_length_stops() {
    let c = Cluster::new("journal");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("journal", 6, 0, &[]));
    let out = c.path("out");
    let first = run_local(&c, &spec, &out);
    assert!(first.status.success(), "{}", stderr(&first));
    let report = std::fs::read(out.join("report.json")).unwrap();
    let journal = out.join("state.journal");
    let clean = std::fs::read(&journal).unwrap();

    // Eight flipped bytes at the end of a commit record (its result bytes).
    let mut buf = clean.clone();
    let (off, len) = *frames(&buf).iter().find(|(off, _)| buf[off + 8 + 9..off + 8 + 13] == COMMIT_RECORD).expect("a commit record");
    for b in &mut buf[off + len - 8..off + len] {
        *b ^= 0xA5;
    }
    std::fs::write(&journal, &buf).unwrap();
    let again = run_local(&c, &spec, &out);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("the result of diagnostic job"), "the damaged record is named: {}", stderr(&again));
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), report, "recomputed, same report");
    let v: serde_json::Value =
        serde_json::from_slice(&c.coordinator(&["verify", "journal", "--local", "--out", out.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert_eq!(v["checked"], 6, "{v}");
    assert_eq!(v["bad"].as_array().unwrap().len(), 0, "{v}");

    // A damaged length field in the middle is not a torn tail.
    let mut buf = std::fs::read(&journal).unwrap();
    let (off, _) = frames(&buf)[2];
    buf[off + 1] ^= 0x40;
    std::fs::write(&journal, &buf).unwrap();
    let broken = run_local(&c, &spec, &out);
    assert_eq!(broken.status.code(), Some(1), "{}", stderr(&broken));
    assert!(stderr(&broken).contains(&format!("at byte {off}")), "{}", stderr(&broken));
    assert_eq!(std::fs::read(&journal).unwrap(), buf, "nothing was cut");
}

#[test]
fn bad_specs_exit_2_naming_the_key_before_anything_runs() {
    let c = Cluster::new("inputs");
    for class in ["ant", "bee", "cat"] {
        std::fs::create_dir_all(c.path(&format!("ds/{class}"))).unwrap();
        std::fs::write(c.path(&format!("ds/{class}/0.png")), b"").unwrap();
    }
    let hub = "[[hub]]\nkey = \"a/b\"\nartifact = \"models/a\"\n[method]\nk = [1]\n";
    let ds = |extra: &str| format!("[[datasets]]\nname = \"d\"\nformat = \"imagefolder\"\npath = \"ds\"\n{extra}");
    let cases = [
        ("etc", format!("{hub}{}", ds("").replace("\"ds\"", "\"/etc\"")), "datasets[0].path"),
        ("climb", format!("{}{}", hub.replace("models/a", "../../models/a"), ds("")), "hub[0].artifact"),
        ("template", format!("{hub}{}", ds("templates = [\"a photo\"]\n")), "has no {c}"),
        ("names", format!("{hub}{}", ds("classnames = [\"ant\", \"bee\"]\n")), "datasets[0].classnames"),
        ("nohub", ds(""), "hub"),
        ("nodata", hub.to_string(), "datasets"),
        ("bigk", format!("{}{}", hub.replace("k = [1]", "k = [1, 3]"), ds("")), "method.k"),
        ("graph", format!("{hub}{}[graph]\npath = \"missing.json\"\n", ds("")), "missing.json"),
    ];
    for (name, body, key) in cases {
        let spec = c.write_spec(&format!("{name}.toml"), &format!("name = \"{name}\"\n{body}"));
        let out = run_local(&c, &spec, &c.path(&format!("out-{name}")));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{name}: the message names {key}: {}", stderr(&out));
        assert!(!c.path(&format!("out-{name}/state.journal")).exists(), "{name}: nothing ran");
    }
}

#[test]
fn ctrl_c_of_a_local_run_exits_130() {
    let c = Cluster::new("sigint");
    let spec = c.write_spec("spec.toml", &diagnostic_spec("sigint", 50, 2000, &[]));
    let out = c.path("out");
    let mut child = Command::new(coordinator_bin())
        .envs(&c.env)
        .current_dir(c.dir.path())
        .args(["run", "--local", "--benchmark", spec.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Meta and expect records first; an execution record means a job started,
    // so the signal handler is in place.
    let start = Instant::now();
    while frames(&std::fs::read(out.join("state.journal")).unwrap_or_default()).len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "the local run never started a job");
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}
