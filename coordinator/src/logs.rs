//! Where the coordinator's log lines go, and how they share the terminal with
//! the progress block ([`crate::progress`]).
//!
//! - On a terminal, log lines are text printed above the progress block
//!   (tracing-indicatif's stderr writer takes the block away while a line is
//!   written, then draws it again). Without a terminal they are JSON lines
//!   (`log.format = "auto"`), or text for `run --local`, which a person runs.
//! - The workers inside this process (`run --local`, `select`, `adapt`) log
//!   each job at info under the `mll_worker` target: only their warnings
//!   reach the terminal.
//! - `run --local` shows only warnings and the progress on the terminal and
//!   writes every line at `log.level` to `<out>/run.log` ([`log_to_file`]).
//! - `RUST_LOG` replaces the level and these filters (terminal and file alike).

use mll_common::telemetry::LogFormat;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use tracing_indicatif::filter::IndicatifFilter;
use tracing_indicatif::IndicatifLayer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The target of the progress lines written where there is no terminal: the
/// one kind of info line `run --local` still shows there.
pub const PROGRESS_TARGET: &str = "mll::progress";

/// How the command logs.
pub struct LogSetup<'a> {
    pub format: LogFormat,
    /// `log.level`: a level or a tracing filter.
    pub level: &'a str,
    /// `run --local`: warnings only on the terminal, everything in run.log.
    pub local_run: bool,
}

/// The file `run --local` logs to, once it knows its output folder.
static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Writes to [`RUN_LOG`] when it is open; drops the line otherwise.
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match RUN_LOG.lock().ok().as_mut().and_then(|g| g.as_mut()) {
            Some(f) => f.write_all(buf).map(|_| buf.len()),
            None => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match RUN_LOG.lock().ok().as_mut().and_then(|g| g.as_mut()) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

struct MakeRunLog;

impl<'a> MakeWriter<'a> for MakeRunLog {
    type Writer = RunLog;
    fn make_writer(&'a self) -> RunLog {
        RunLog
    }
}

/// Appends every later log line (at `log.level`) to `path` (run.log in the
/// output folder of `run --local`). Returns whether the file could be opened;
/// the lines are dropped when it could not.
pub fn log_to_file(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(mut g) = RUN_LOG.lock() {
        *g = Some(file);
    }
    Ok(())
}

/// The terminal's filter: `RUST_LOG`, else the level with the in-process
/// workers' info lines left out (warnings only for `run --local`).
fn terminal_filter(level: &str, local_run: bool) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let directives = if local_run {
        let base = if matches!(level.trim(), "error" | "off") { level.trim() } else { "warn" };
        format!("{base},{PROGRESS_TARGET}=info")
    } else if level.contains("mll_worker") {
        level.to_string()
    } else {
        format!("{level},mll_worker=warn")
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,mll_worker=warn"))
}

fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")))
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(setup: &LogSetup<'_>) {
    let terminal = std::io::stderr().is_terminal();
    let json = match setup.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal && !setup.local_run,
    };
    let mut layers: Vec<Boxed> = Vec::new();
    let filter = terminal_filter(setup.level, setup.local_run);
    if terminal {
        // The progress block: bars for the spans marked `indicatif.pb_show` only.
        let bars: IndicatifLayer<Registry> = IndicatifLayer::new().with_max_progress_bars(16, None).with_span_child_prefix_symbol("");
        let writer = bars.get_stderr_writer();
        layers.push(bars.with_filter(IndicatifFilter::new(false)).boxed());
        let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
        layers.push(if json {
            fmt.json().flatten_event(true).with_filter(filter).boxed()
        } else {
            fmt.compact().with_filter(filter).boxed()
        });
    } else {
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
        layers.push(if json {
            fmt.json().flatten_event(true).with_filter(filter).boxed()
        } else {
            fmt.compact().with_filter(filter).boxed()
        });
    }
    if setup.local_run {
        let fmt = tracing_subscriber::fmt::layer().with_writer(MakeRunLog).with_ansi(false);
        let filter = level_filter(setup.level);
        layers.push(if setup.format == LogFormat::Json {
            fmt.json().flatten_event(true).with_filter(filter).boxed()
        } else {
            fmt.with_filter(filter).boxed()
        });
    }
    // try_init: tests may initialise more than once.
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Prints a line on stderr above the progress block (`eprintln!` would be
/// drawn over by it).
pub fn eprint_above(line: &str) {
    tracing_indicatif::suspend_tracing_indicatif(|| eprintln!("{line}"));
}
