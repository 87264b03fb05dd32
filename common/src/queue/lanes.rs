//! Model-affine placement (docs/operations.md, "Placement"). Every job that
//! runs a model travels in that model's *lane*: a work queue of its own
//! (`<broker.queue>.lane.<hash of the model key>`); jobs without a model
//! (embed, diagnostic) travel in the main work queue. A worker consumes one
//! lane at a time and keeps it while it has work, so the model stays loaded;
//! when its lane runs dry it moves to the lane with the most ready work per
//! worker ([`choose`]). Loading, not GPUs, would otherwise bound a large hub:
//! a worker taking whatever comes next loads every model.
//!
//! [`choose`] is the one policy: the workers call it with what the broker
//! reports, and `bench-placement` calls it in its simulation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One model's lane.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lane(String);

impl Lane {
    /// The lane of the model `key`: `lane.` and 16 hex digits of its SHA-256,
    /// so any model key gives a valid queue name of a fixed length.
    pub fn of_model(key: &str) -> Lane {
        Lane(format!("lane.{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16]))
    }

    /// A lane name read back from the store; None unless it has the shape
    /// [`Lane::of_model`] gives.
    pub fn parse(name: &str) -> Option<Lane> {
        let hex = name.strip_prefix("lane.")?;
        (hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| Lane(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The queue that holds this lane's jobs.
    pub fn queue_name(&self, main_queue: &str) -> String {
        format!("{main_queue}.{}", self.0)
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the broker reports of one lane (None: the main work queue), and
/// what moving there would cost the worker asking.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneLoad {
    pub lane: Option<Lane>,
    /// Messages ready (not delivered to anyone).
    pub ready: u64,
    /// Workers consuming it now.
    pub consumers: u32,
    /// Loading the lane's model, in jobs' time (load seconds over a job's
    /// seconds): 0 when the worker holds the model or has no estimate.
    pub load_cost: f64,
}

impl LaneLoad {
    /// A lane as the broker reports it, with no load cost known.
    pub fn new(lane: Option<Lane>, ready: u64, consumers: u32) -> Self {
        LaneLoad { lane, ready, consumers, load_cost: 0.0 }
    }
}

/// Where a worker consuming `current` goes next: the lane with the most
/// ready messages per worker once it joins (`ready / (others + 1)`, where
/// `others` leaves the worker itself out of its own lane's consumers), less
/// the time the move would spend loading the lane's model. A lane whose own
/// workers will have taken its ready messages before this one could load the
/// model (`ready / others <= load_cost`) is left to them. Ties keep the
/// current lane, then go to the main queue, then to the lowest lane name, so
/// every worker decides the same way from the same numbers. None when no
/// lane is worth moving to: the worker stays where it is.
pub fn choose(current: &Option<Lane>, loads: &[LaneLoad]) -> Option<Option<Lane>> {
    let mut best: Option<(&LaneLoad, f64)> = None;
    for l in loads.iter().filter(|l| l.ready > 0) {
        let others = if l.lane == *current { l.consumers.saturating_sub(1) } else { l.consumers };
        if others > 0 && l.load_cost > 0.0 && l.ready as f64 / f64::from(others) <= l.load_cost {
            continue;
        }
        let score = l.ready as f64 / (f64::from(others) + 1.0) - l.load_cost;
        let better = match best {
            None => true,
            Some((b, s)) => score > s || (score == s && rank(l, current) < rank(b, current)),
        };
        if better {
            best = Some((l, score));
        }
    }
    best.map(|(l, _)| l.lane.clone())
}

/// Tie order: the current lane, the main queue, then by name.
fn rank<'a>(l: &'a LaneLoad, current: &Option<Lane>) -> (u8, Option<&'a str>) {
    if l.lane == *current {
        (0, None)
    } else if l.lane.is_none() {
        (1, None)
    } else {
        (2, l.lane.as_ref().map(Lane::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(lane: Option<&str>, ready: u64, consumers: u32) -> LaneLoad {
        LaneLoad::new(lane.map(Lane::of_model), ready, consumers)
    }

    #[test]
    fn lanes_are_fixed_length_queue_names() {
        let l = Lane::of_model("ViT-bigG-14/laion2b_s39b_b160k");
        assert_eq!(l.as_str().len(), "lane.".len() + 16);
        assert_eq!(Lane::parse(l.as_str()), Some(l.clone()));
        assert_eq!(Lane::parse("lane.xyz"), None);
        assert_eq!(l.queue_name("mll.jobs"), format!("mll.jobs.{l}"));
        assert_ne!(Lane::of_model("a"), Lane::of_model("b"));
    }

    #[test]
    fn most_ready_work_per_worker_wins() {
        // 100 ready with 3 workers (33 each) loses to 40 ready with none.
        let loads = [load(Some("a"), 100, 3), load(Some("b"), 40, 0), load(None, 0, 1)];
        assert_eq!(choose(&None, &loads), Some(Some(Lane::of_model("b"))));
        // A worker already on `a` counts itself out: 100 / 3 < 40.
        assert_eq!(choose(&Some(Lane::of_model("a")), &loads), Some(Some(Lane::of_model("b"))));
        // Nothing ready anywhere: stay.
        assert_eq!(choose(&None, &[load(Some("a"), 0, 2), load(None, 0, 0)]), None);
    }

    #[test]
    fn a_load_costs_its_time_and_a_lane_its_workers_will_drain_is_left_to_them() {
        let cached = load(Some("a"), 10, 2);
        let big = LaneLoad { load_cost: 2.0, ..load(Some("b"), 12, 1) };
        // 10 / 3 = 3.3 for the held model against 12 / 2 - 2 = 4 for the big one.
        assert_eq!(choose(&None, &[cached.clone(), big.clone()]), Some(Some(Lane::of_model("b"))));
        let big = LaneLoad { load_cost: 3.0, ..big };
        assert_eq!(choose(&None, &[cached, big.clone()]), Some(Some(Lane::of_model("a"))));
        // 2 ready for 1 worker, 3 jobs' time to load: its worker takes them first.
        let tail = LaneLoad { ready: 2, ..big.clone() };
        assert_eq!(choose(&None, &[tail]), None);
        // Nobody on it: it is taken whatever the cost, or it would be stranded.
        let alone = LaneLoad { consumers: 0, ready: 1, ..big };
        assert_eq!(choose(&None, &[alone]), Some(Some(Lane::of_model("b"))));
    }

    #[test]
    fn ties_keep_the_current_lane_then_prefer_the_main_queue() {
        let loads = [load(Some("a"), 10, 1), load(Some("b"), 10, 0), load(None, 10, 0)];
        let a = Some(Lane::of_model("a"));
        assert_eq!(choose(&a, &loads), Some(a.clone()), "the current lane keeps a tie (10 / (0 + 1))");
        let loads = [load(Some("a"), 5, 0), load(Some("b"), 5, 0), load(None, 5, 0)];
        assert_eq!(choose(&Some(Lane::of_model("z")), &loads), Some(None));
        let loads = [load(Some("b"), 5, 0), load(Some("a"), 5, 0)];
        let first = [Lane::of_model("a"), Lane::of_model("b")].into_iter().min().unwrap();
        assert_eq!(choose(&None, &loads), Some(Some(first)), "the lowest lane name, whatever the input order");
    }
}
