//! Ctrl-C (SIGINT), SIGTERM and SIGHUP: the first cancels the run (in-flight transfers
//! stop, partial files stay for a resume, the report still gets a `cancelled` line per
//! job) and sets the exit code, 128 + the signal's number as a shell reports a process
//! killed by it (130, 143, 129), so a supervisor that reads the code sees which signal
//! stopped the run. A second signal exits at once. SIGTERM matters as much as Ctrl-C:
//! `docker stop`, Kubernetes, systemd and Slurm stop a job with it.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use fetchpool::CancelHandle;

/// A signal that stops the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
    Hangup,
}

impl Stop {
    /// The exit code of a run this signal stopped: 128 + its number on Linux.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => crate::cli::EXIT_INTERRUPTED,
            Stop::Terminate => crate::cli::EXIT_TERMINATED,
            Stop::Hangup => crate::cli::EXIT_HANGUP,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupted",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
        }
    }
}

#[derive(Clone, Default)]
pub struct Interrupt(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    handle: Option<CancelHandle>,
    first: Option<Stop>,
}

/// Installs the handler; a failure to install only costs the graceful stop.
pub fn install() -> Interrupt {
    let it = Interrupt::default();
    let shared = it.clone();
    if let Err(e) = listen(move |stop| shared.on_signal(stop)) {
        log::warn!("cannot install the signal handler: {e}");
    }
    it
}

/// Runs `on` for every SIGINT, SIGTERM and SIGHUP, on a thread of its own (never in
/// signal context, so it may lock and print).
#[cfg(unix)]
fn listen(on: impl Fn(Stop) + Send + 'static) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on(match sig {
                    SIGTERM => Stop::Terminate,
                    SIGHUP => Stop::Hangup,
                    _ => Stop::Interrupt,
                });
            }
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn listen(on: impl Fn(Stop) + Send + 'static) -> std::io::Result<()> {
    ctrlc::set_handler(move || on(Stop::Interrupt)).map_err(std::io::Error::other)
}

impl Interrupt {
    fn on_signal(&self, stop: Stop) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Stderr may be gone (SIGHUP from a closed terminal): never panic on it.
        let mut err = std::io::stderr();
        if state.first.is_some() {
            let _ = writeln!(err, "fetchpool: {} again; exiting now", stop.name());
            std::process::exit(i32::from(stop.exit_code()));
        }
        state.first = Some(stop);
        let again = match stop {
            Stop::Interrupt => "Ctrl-C again",
            _ => "a second signal",
        };
        let _ = writeln!(
            err,
            "fetchpool: {}; stopping, keeping partial files for a resume ({again} quits at once)",
            stop.name()
        );
        if let Some(h) = &state.handle {
            h.cancel();
        }
    }

    /// Binds the handler to a run; a signal that came before cancels it at once.
    pub fn arm(&self, handle: CancelHandle) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state.first.is_some() {
            handle.cancel();
        }
        state.handle = Some(handle);
    }

    /// The signal that stopped the run, if one did.
    pub fn stopped_by(&self) -> Option<Stop> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).first
    }
}
