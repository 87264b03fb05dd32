//! What the worker loop remembers to weigh a move to another lane
//! (`mll_common::queue::lanes::choose`): which lane holds which model, which
//! models it has loaded lately (its model cache, approximated by the lanes it
//! served and their module sizes), how long its jobs take, and so what
//! loading a lane's model would cost in jobs' time.

use mll_common::queue::{Lane, LaneLoad};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

pub struct PlacementMemory {
    data_root: PathBuf,
    /// Lane → its model's artifact folder (from the store's lane registry).
    artifacts: HashMap<Lane, String>,
    /// module.pt sizes by artifact folder (0: unknown).
    sizes: HashMap<String, u64>,
    /// Models served lately, most recent last, within `capacity` bytes.
    held: VecDeque<(String, u64)>,
    capacity: u64,
    /// Moving average of this worker's job durations on lanes, seconds.
    job_seconds: Option<f64>,
    bytes_per_s: f64,
}

impl PlacementMemory {
    pub fn new(data_root: PathBuf, capacity: u64, bytes_per_s: f64) -> Self {
        PlacementMemory {
            data_root,
            artifacts: HashMap::new(),
            sizes: HashMap::new(),
            held: VecDeque::new(),
            capacity,
            job_seconds: None,
            bytes_per_s: bytes_per_s.max(1.0),
        }
    }

    /// Takes the store's lane registry.
    pub fn learn(&mut self, lanes: &[(Lane, String)]) {
        for (lane, artifact) in lanes {
            self.artifacts.insert(lane.clone(), artifact.clone());
        }
    }

    fn size(&mut self, artifact: &str) -> u64 {
        if let Some(&s) = self.sizes.get(artifact) {
            return s;
        }
        let s = std::fs::metadata(self.data_root.join(artifact).join("module.pt")).map(|m| m.len()).unwrap_or(0);
        self.sizes.insert(artifact.to_string(), s);
        s
    }

    /// A job of `lane` took `seconds`: its model is loaded now.
    pub fn served(&mut self, lane: &Lane, seconds: f64) {
        self.job_seconds = Some(match self.job_seconds {
            None => seconds,
            Some(avg) => 0.8 * avg + 0.2 * seconds,
        });
        let Some(artifact) = self.artifacts.get(lane).cloned() else { return };
        let size = self.size(&artifact);
        if let Some(p) = self.held.iter().position(|(a, _)| *a == artifact) {
            let entry = self.held.remove(p).expect("found");
            self.held.push_back(entry);
            return;
        }
        self.held.push_back((artifact, size));
        while self.held.iter().map(|(_, s)| s).sum::<u64>() > self.capacity && self.held.len() > 1 {
            self.held.pop_front();
        }
    }

    /// Sets each lane's load cost: its model's load time over a job's time,
    /// 0 for a model held, or while there is no estimate yet.
    pub fn weigh(&mut self, loads: &mut [LaneLoad]) {
        let Some(job) = self.job_seconds.filter(|s| *s > 0.0) else { return };
        for l in loads.iter_mut() {
            let Some(lane) = &l.lane else { continue };
            let Some(artifact) = self.artifacts.get(lane).cloned() else { continue };
            if self.held.iter().any(|(a, _)| *a == artifact) {
                continue;
            }
            l.load_cost = self.size(&artifact) as f64 / self.bytes_per_s / job;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_model_costs_nothing_and_an_unknown_one_its_load_time_in_jobs() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("a", 3000usize), ("b", 6000)] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("module.pt"), vec![0u8; bytes]).unwrap();
        }
        let (a, b) = (Lane::of_model("a"), Lane::of_model("b"));
        let mut m = PlacementMemory::new(dir.path().to_path_buf(), 8000, 1000.0);
        m.learn(&[(a.clone(), "a".into()), (b.clone(), "b".into())]);
        let mut loads = vec![LaneLoad::new(Some(a.clone()), 5, 0), LaneLoad::new(Some(b.clone()), 5, 0)];
        m.weigh(&mut loads);
        assert!(loads.iter().all(|l| l.load_cost == 0.0), "no job timed yet: no estimate");
        m.served(&a, 2.0);
        m.weigh(&mut loads);
        // a is held; b: 6000 B at 1000 B/s = 6 s = 3 jobs of 2 s.
        assert_eq!((loads[0].load_cost, loads[1].load_cost), (0.0, 3.0));
        // Serving b pushes a out of an 8000-byte cache.
        m.served(&b, 2.0);
        let mut loads = vec![LaneLoad::new(Some(a), 5, 0), LaneLoad::new(Some(b), 5, 0)];
        m.weigh(&mut loads);
        assert_eq!((loads[0].load_cost, loads[1].load_cost), (1.5, 0.0));
    }
}
