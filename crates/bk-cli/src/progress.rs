//! Progress on a terminal: a bar per phase of an operation (bytes done of
//! the total, rate, time left, files done, the current file), drawn on
//! stderr only when stderr is a terminal and `--quiet` is not given.
//! Otherwise nothing is drawn, and stderr holds only what the command
//! prints at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bk_core::tree::display_path;
use bk_core::{Phase, Progress, Totals};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress receiver of a command; counts files even when it draws
/// nothing (for the message of an interrupted restore).
#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    files_done: AtomicU64,
    files_total: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// "files", or "packs" for a check.
    unit: &'static str,
    current: Vec<u8>,
}

/// The spinner's and the bar's redraw interval (also when nothing moves,
/// so the elapsed time and the rate stay current).
const TICK: Duration = Duration::from_millis(100);

impl Bar {
    /// A bar on stderr, unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Arc<Bar> {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(spinner());
            b.set_prefix("starting");
            b.enable_steady_tick(TICK);
            b
        });
        Arc::new(Bar {
            bar,
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            state: Mutex::new(State {
                unit: "files",
                current: Vec::new(),
            }),
        })
    }

    /// Files (units) done in the current phase, and its total.
    pub fn files(&self) -> (u64, u64) {
        (
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
        )
    }

    /// Remove the bar, before the command prints its summary.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn show(&self, bar: &ProgressBar, st: &State) {
        let (done, total) = self.files();
        bar.set_message(format!(
            "{done}/{total} {} {}",
            st.unit,
            display_path(&st.current)
        ));
    }
}

/// For a phase with totals: the numbers on the first line (short enough for
/// 80 columns), files and the current file on the second, cut to the width.
fn bar() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>9} [{bar:20}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}\n          {wide_msg}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

/// For a phase without totals.
fn spinner() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {elapsed}").expect("valid template")
}

impl Progress for Bar {
    fn phase(&self, phase: Phase, totals: Totals) {
        self.files_done.store(0, Ordering::Relaxed);
        self.files_total
            .store(totals.files.unwrap_or(0), Ordering::Relaxed);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.unit = if phase == Phase::Check {
            "packs"
        } else {
            "files"
        };
        st.current.clear();
        let Some(b) = &self.bar else { return };
        // Every change may draw: name and style before the numbers.
        b.set_prefix(phase.name());
        b.set_style(match totals.bytes {
            Some(_) => bar(),
            None => spinner(),
        });
        b.reset();
        match totals.bytes {
            Some(n) => {
                b.set_length(n);
                self.show(b, &st);
            }
            None => {
                b.unset_length();
                b.set_message("");
            }
        }
    }

    fn bytes(&self, path: &[u8], bytes: u64) {
        let Some(b) = &self.bar else { return };
        b.inc(bytes);
        // Called by every worker for every chunk: never wait here.
        if let Ok(mut st) = self.state.try_lock()
            && st.current != path
        {
            st.current.clear();
            st.current.extend_from_slice(path);
            self.show(b, &st);
        }
    }

    fn file_done(&self, _path: &[u8]) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bar
            && let Ok(st) = self.state.try_lock()
        {
            self.show(b, &st);
        }
    }
}
