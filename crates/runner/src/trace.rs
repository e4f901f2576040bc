//! Start-up tracing: where a container's start-up time goes.

/// Prints a phase and the milliseconds since the first call when UNIONCTL_TRACE is set
/// (to see where container start-up time goes).
pub fn phase(phase: &str) {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    if let Some(t0) =
        START.get_or_init(|| std::env::var_os("UNIONCTL_TRACE").map(|_| Instant::now()))
    {
        eprintln!("[{:7.2} ms] {phase}", t0.elapsed().as_secs_f64() * 1000.0);
    }
}
