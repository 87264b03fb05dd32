//! A followed run's progress as a person reads it. On a terminal: one block,
//! redrawn in place (tracing-indicatif's bars, [`crate::logs`] prints log
//! lines above it): a line for the run (jobs done, rate, ETA, elapsed) and a
//! bar per stage (counts, failures, rate, ETA). Without a terminal: one line
//! every few seconds while the run moves (at least one a minute), under the
//! [`PROGRESS_TARGET`] log target.

use crate::control::RunStatus;
use crate::logs::PROGRESS_TARGET;
use indicatif::ProgressStyle;
use mll_common::Stage;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use tracing::Span;
use tracing_indicatif::span_ext::IndicatifSpanExt;

/// How often a progress line is written without a terminal while jobs finish.
pub const LINE_EVERY: Duration = Duration::from_secs(5);
/// ... and while none do.
const QUIET_LINE_EVERY: Duration = Duration::from_secs(60);
/// Rates are measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Jobs finished over recent time.
#[derive(Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn push(&mut self, now: Instant, finished: u64) {
        self.samples.push_back((now, finished));
        // Keep one sample at or beyond the window's start.
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
    }

    /// Jobs per second; None until a second has passed.
    fn per_sec(&self) -> Option<f64> {
        let (&(t0, n0), &(t1, n1)) = (self.samples.front()?, self.samples.back()?);
        let dt = t1.duration_since(t0).as_secs_f64();
        (dt >= 1.0).then(|| n1.saturating_sub(n0) as f64 / dt)
    }
}

/// "1h 02m", "3m 05s", "42s".
pub fn duration_text(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn rate_text(per_sec: Option<f64>) -> String {
    match per_sec {
        None => "rate –".into(),
        Some(r) if r >= 0.95 => format!("{r:.1} jobs/s"),
        Some(r) => format!("{:.1} jobs/min", r * 60.0),
    }
}

fn eta_text(remaining: u64, per_sec: Option<f64>) -> String {
    match (remaining, per_sec) {
        (0, _) => "done".into(),
        (_, Some(r)) if r > 0.0 => format!("ETA {}", duration_text(remaining as f64 / r)),
        _ => "ETA –".into(),
    }
}

/// A run's stages in pipeline order (embed, label, evaluate, diagnostic).
fn ordered(status: &RunStatus) -> Vec<(&str, &mll_common::store::StageProgress)> {
    let pos = |s: &str| Stage::ALL.iter().position(|x| x.as_str() == s).unwrap_or(usize::MAX);
    let mut v: Vec<_> = status.stages.iter().map(|(s, p)| (s.as_str(), p)).collect();
    v.sort_by_key(|(s, _)| pos(s));
    v
}

/// A stage's bar under the run's line.
fn stage_span(head: &Span, name: &str, expected: u64) -> Span {
    let s = tracing::info_span!(target: PROGRESS_TARGET, parent: head, "stage", indicatif.pb_show = tracing::field::Empty);
    let template = format!("{{span_child_prefix}}{name:<10} [{{bar:32.cyan/blue}}] {{pos:>7}}/{{len:<7}} {{msg}}");
    s.pb_set_style(&ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> "));
    s.pb_set_length(expected);
    s.pb_start();
    s
}

/// The bars of the block: the run's line and one per stage.
struct Block {
    head: Span,
    stages: BTreeMap<String, Span>,
}

pub struct Progress {
    run: String,
    started: Instant,
    block: Option<Block>,
    total: Rate,
    stages: BTreeMap<String, Rate>,
    last_line: Instant,
    last_line_finished: Option<u64>,
}

impl Progress {
    /// `terminal`: draw the block; otherwise write lines.
    pub fn new(run: &str, terminal: bool) -> Progress {
        let block = terminal.then(|| {
            let head = tracing::info_span!(target: PROGRESS_TARGET, "run", indicatif.pb_show = tracing::field::Empty);
            head.pb_set_style(&ProgressStyle::with_template("{spinner:.green} {msg}").expect("valid template"));
            head.pb_set_message(&format!("run {run}: starting"));
            head.pb_start();
            Block { head, stages: BTreeMap::new() }
        });
        let now = Instant::now();
        Progress {
            run: run.to_string(),
            started: now,
            block,
            total: Rate::default(),
            stages: BTreeMap::new(),
            last_line: now,
            last_line_finished: None,
        }
    }

    /// Shows `status` (one poll of the run).
    pub fn update(&mut self, status: &RunStatus) {
        let now = Instant::now();
        let stages = ordered(status);
        let (mut finished, mut expected, mut failed) = (0, 0, 0);
        for (name, p) in &stages {
            finished += p.done + p.failed;
            expected += p.expected;
            failed += p.failed;
            self.stages.entry(name.to_string()).or_default().push(now, p.done + p.failed);
        }
        self.total.push(now, finished);
        let elapsed = duration_text(now.duration_since(self.started).as_secs_f64());
        let rate = self.total.per_sec();
        let failed_text = if failed > 0 { format!(", {failed} failed") } else { String::new() };
        let summary = format!(
            "{finished}/{expected} jobs{failed_text}, {}, {} (elapsed {elapsed})",
            rate_text(rate),
            eta_text(expected.saturating_sub(finished), rate)
        );
        match &mut self.block {
            Some(block) => {
                block.head.pb_set_message(&format!("run {}: {summary}", self.run));
                // tracing-indicatif puts a new bar right under the run's line:
                // made last stage first, they read in pipeline order.
                for (name, p) in stages.iter().rev() {
                    block.stages.entry(name.to_string()).or_insert_with(|| stage_span(&block.head, name, p.expected));
                }
                for (name, p) in &stages {
                    let span = &block.stages[*name];
                    let stage_rate = self.stages.get(*name).and_then(Rate::per_sec);
                    let remaining = p.expected.saturating_sub(p.done + p.failed);
                    let waiting = p.done + p.failed == 0 && stage_rate.is_none_or(|r| r == 0.0);
                    let mut msg = if remaining == 0 {
                        "done".to_string()
                    } else if waiting {
                        "waiting".to_string()
                    } else {
                        format!("{}, {}", rate_text(stage_rate), eta_text(remaining, stage_rate))
                    };
                    if p.failed > 0 {
                        msg = format!("{} failed; {msg}", p.failed);
                    }
                    span.pb_set_length(p.expected);
                    span.pb_set_position(p.done + p.failed);
                    span.pb_set_message(&msg);
                }
            }
            None => {
                let moved = self.last_line_finished != Some(finished);
                let due = now.duration_since(self.last_line) >= if moved { LINE_EVERY } else { QUIET_LINE_EVERY };
                if due {
                    self.last_line = now;
                    self.last_line_finished = Some(finished);
                    let per_stage: Vec<String> = stages
                        .iter()
                        .map(|(s, p)| {
                            let f = if p.failed > 0 { format!(" ({} failed)", p.failed) } else { String::new() };
                            format!("{s} {}/{}{f}", p.done + p.failed, p.expected)
                        })
                        .collect();
                    tracing::info!(target: PROGRESS_TARGET, "{}: {}; {summary}", self.run, per_stage.join(", "));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_rates_and_etas_read_as_a_person_says_them() {
        assert_eq!(duration_text(42.4), "42s");
        assert_eq!(duration_text(185.0), "3m 05s");
        assert_eq!(duration_text(3720.0), "1h 02m");
        assert_eq!(rate_text(None), "rate –");
        assert_eq!(rate_text(Some(12.46)), "12.5 jobs/s");
        assert_eq!(rate_text(Some(0.05)), "3.0 jobs/min");
        assert_eq!(eta_text(0, None), "done");
        assert_eq!(eta_text(10, Some(0.0)), "ETA –");
        assert_eq!(eta_text(120, Some(2.0)), "ETA 1m 00s");
    }

    #[test]
    fn the_rate_is_measured_over_the_recent_window() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        r.push(t0, 100);
        assert_eq!(r.per_sec(), None, "no time has passed");
        r.push(t0 + Duration::from_secs(2), 110);
        assert_eq!(r.per_sec(), Some(5.0), "jobs done before the first poll (a resumed run) do not count");
        // Two minutes later, only the last window counts: 60 jobs in 60 s.
        for s in 3..=120 {
            r.push(t0 + Duration::from_secs(s), 110 + (s - 2));
        }
        let rate = r.per_sec().unwrap();
        assert!((rate - 1.0).abs() < 0.05, "{rate}");
    }
}
