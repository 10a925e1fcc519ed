//! The binary's modules: arguments, the run, its check pass, its output, its signals.
//!
//! Only the library's public API is used here; the flag names, hints and exit codes
//! that the library knows nothing of live here.

pub mod args;
pub mod checksums;
pub mod credentials;
pub mod dry_run;
pub mod glob;
pub mod hints;
pub mod interrupt;
pub mod progress;
pub mod report;
pub mod responses;
pub mod run;
pub mod select;
pub mod sources;
pub mod summary;
pub mod sync;
pub mod verify;

pub use summary::human_bytes;

// Exit codes, as documented in `--help`.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CONFIG: u8 = 2;
/// Stopped by a signal: 128 + its number, as a shell reports it.
pub const EXIT_INTERRUPTED: u8 = 130;
pub const EXIT_TERMINATED: u8 = 143;
pub const EXIT_HANGUP: u8 = 129;
