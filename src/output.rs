//! The process's standard output when it is a pipe or a socket, whose reader may leave
//! early (`royalty-ingest dlq list --each | head -3`).
//!
//! The rule (README, "Output into a pipe"): a reader that goes away never panics a command
//! and never stops its work half-way. From then on the output is dropped, the command
//! finishes what it does and exits with the status its work earned; only `alerts tail`,
//! whose one job is printing, stops (exit 0).
//!
//! Why not the default SIGPIPE (the usual Unix answer): it kills the process at the first
//! write, and `produce` prints its outcome before it publishes the reports' control totals
//! (lines published, totals not: 4 of 5 tries of `produce a.csv | head -1`); a daemon's
//! TLS sockets (OpenSSL writes without `MSG_NOSIGNAL`) could raise it too. Why not a
//! writer of our own: `println!` is spread over every command, and one writer at the file
//! descriptor covers them all, those written later included. So fd 1 becomes a pipe that
//! a thread of ours forwards to the real output; a write into it never fails, whatever the
//! reader of the real one does.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// Cancelled once the reader of standard output went away.
fn gone() -> &'static CancellationToken {
    static GONE: OnceLock<CancellationToken> = OnceLock::new();
    GONE.get_or_init(CancellationToken::new)
}

/// Whether the reader of standard output went away: what is printed is dropped from then on.
pub fn reader_gone() -> bool {
    gone().is_cancelled()
}

/// Resolves once the reader of standard output went away (for commands that only print).
pub async fn reader_left() {
    gone().cancelled().await
}

/// Standard output routed through the forwarder; [`StdoutGuard::finish`] (or drop) writes
/// out what is left and puts the real one back.
#[must_use = "dropping the guard at once would end the forwarding at once"]
pub struct StdoutGuard {
    forwarding: Option<Forwarding>,
}

impl StdoutGuard {
    /// Flushes what was printed to the real output and restores it (waits for the reader
    /// to take it, as a direct write would).
    pub fn finish(self) {}
}

impl Drop for StdoutGuard {
    fn drop(&mut self) {
        if let Some(forwarding) = self.forwarding.take() {
            forwarding.finish();
        }
    }
}

/// Routes standard output through the forwarder when it is a pipe or a socket (a terminal
/// or a file has no reader to lose). Call first thing in `main`, before anything prints.
/// When that cannot be set up the output stays as it is.
pub fn guard_stdout() -> StdoutGuard {
    let forwarding = match Forwarding::start() {
        Ok(forwarding) => forwarding,
        Err(err) => {
            eprintln!("warning: standard output is used directly ({err})");
            None
        }
    };
    StdoutGuard { forwarding }
}

#[cfg(unix)]
use unix::Forwarding;

/// Elsewhere standard output is used directly.
#[cfg(not(unix))]
struct Forwarding;

#[cfg(not(unix))]
impl Forwarding {
    fn start() -> std::io::Result<Option<Forwarding>> {
        Ok(None)
    }

    fn finish(self) {}
}

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io::{ErrorKind, PipeReader, Read, Write};
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;
    use std::thread::JoinHandle;

    use super::gone;

    /// The forwarder thread and the real standard output it writes to.
    pub(super) struct Forwarding {
        real: OwnedFd,
        thread: JoinHandle<()>,
    }

    impl Forwarding {
        /// None when standard output is not a pipe or socket (or is closed).
        pub(super) fn start() -> std::io::Result<Option<Forwarding>> {
            // SAFETY: fd 1 is only borrowed for the duplication; a closed fd 1 makes it fail.
            let stdout = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
            let Ok(real) = stdout.try_clone_to_owned() else {
                return Ok(None);
            };
            let kind = File::from(real.try_clone()?).metadata()?.file_type();
            if !(kind.is_fifo() || kind.is_socket()) {
                return Ok(None);
            }
            let (reader, writer) = std::io::pipe()?;
            std::io::stdout().flush()?;
            // SAFETY: both descriptors are open and owned; dup2 replaces fd 1 atomically.
            if unsafe { libc::dup2(writer.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // fd 1 is now the pipe's only write end.
            drop(writer);
            let sink = File::from(real.try_clone()?);
            let thread = std::thread::Builder::new()
                .name("stdout".into())
                .spawn(move || forward(reader, sink))?;
            Ok(Some(Forwarding { real, thread }))
        }

        /// Closes the pipe's write end by putting the real output (or, once its reader
        /// left, /dev/null) back on fd 1, then waits until the forwarder wrote the rest.
        pub(super) fn finish(self) {
            let _ = std::io::stdout().flush();
            let null = File::options().write(true).open("/dev/null");
            let target = match &null {
                Ok(null) if gone().is_cancelled() => null.as_raw_fd(),
                _ => self.real.as_raw_fd(),
            };
            // SAFETY: both descriptors are open; dup2 replaces fd 1 atomically.
            if unsafe { libc::dup2(target, libc::STDOUT_FILENO) } < 0 {
                // fd 1 still holds the pipe: the forwarder would never see its end.
                return;
            }
            let _ = self.thread.join();
        }
    }

    /// Copies the pipe to the real output until the pipe's end. When the real output's
    /// reader leaves (seen by `poll` while idle, or by a failed write) the rest is read and
    /// dropped, so writers into the pipe never block or fail.
    fn forward(mut from: PipeReader, mut to: File) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            if !gone().is_cancelled() && !wait_readable(&from, &to) {
                gone().cancel();
            }
            let n = match from.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if gone().is_cancelled() {
                continue;
            }
            if let Err(err) = write_all(&mut to, &buffer[..n]) {
                // A reader that left is the normal end of `| head`; anything else is said.
                if err.kind() != ErrorKind::BrokenPipe {
                    eprintln!("warning: standard output failed ({err}); the rest is dropped");
                }
                gone().cancel();
            }
        }
    }

    /// Waits until the pipe has data (true) or the real output's reader is gone (false).
    fn wait_readable(from: &PipeReader, to: &File) -> bool {
        let mut fds = [
            libc::pollfd {
                fd: from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            // No events asked: poll reports an error or hang-up of the real output (a pipe
            // whose reader closed, a socket whose peer left) by itself.
            libc::pollfd {
                fd: to.as_raw_fd(),
                events: 0,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                    continue;
                }
                // poll itself failed: fall back to reading; a failed write still tells.
                return true;
            }
            if fds[1].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                return false;
            }
            return true;
        }
    }

    /// `write_all` that also waits out a real output someone set non-blocking.
    fn write_all(to: &mut File, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            match to.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    let mut fd = libc::pollfd {
                        fd: to.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut fd, 1, -1) };
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
