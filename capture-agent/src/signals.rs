//! SIGINT/SIGTERM as a stop flag.
//!
//! The first signal sets the flag: capture threads see it within one poll timeout, and
//! the agent then sends what it holds and exits 0. A second signal while it does so exits
//! at once with status 128 + signal number (an operator pressing Ctrl-C twice means it).
//! `signal-hook`'s flag API does the async-signal-safe part, so no unsafe code here.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

/// Installs the handlers and returns the flag they set.
pub fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop))?;
        flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}
