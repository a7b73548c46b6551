//! A progress line for long commands, drawn on stderr only when stderr is a terminal (logs
//! and pipes stay clean); redrawn at most ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A `label: done/total` line that rewrites itself.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: u64,
    drawn_at: Option<Instant>,
    on_terminal: bool,
}

impl Progress {
    /// A progress line out of `total` (0: unknown, only the count is shown).
    pub fn new(label: &'static str, total: u64) -> Progress {
        Progress {
            label,
            total,
            done: 0,
            drawn_at: None,
            on_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Adds `n` to the count and redraws when due.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        let due = self
            .drawn_at
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
        if due {
            self.draw();
        }
    }

    /// Draws the final count and ends the line.
    pub fn finish(&mut self) {
        if self.on_terminal && self.drawn_at.is_some() {
            self.draw();
            eprintln!();
        }
    }

    fn draw(&mut self) {
        if !self.on_terminal {
            return;
        }
        self.drawn_at = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = match (self.done.min(self.total) * 100).checked_div(self.total) {
            Some(percent) => write!(
                err,
                "\r{}: {}/{} ({percent}%)",
                self.label, self.done, self.total
            ),
            None => write!(err, "\r{}: {}", self.label, self.done),
        };
        let _ = err.flush();
    }
}
