//! What /proc tells about a process: whether it lives and when it started, so a pid
//! reused by another process is not taken for the one recorded.

/// Field 22 of /proc/PID/stat, ignoring zombies (state Z counts as gone).
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_start(&stat)
}

/// The state letter of a process (field 3 of /proc/PID/stat: R, S, D, T, t, Z...).
pub fn proc_state(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.first().map(|s| s.to_string())
}

/// True when `pid` exists and, if `start` is known, started at that time.
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    match proc_start_time(pid) {
        Some(t) => start.is_none_or(|s| s == t),
        None => false,
    }
}

/// The fields of /proc/PID/stat from field 3 (the state) on.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    // comm may contain spaces and parens: fields start after the last ')'.
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

fn parse_stat_start(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_start_time_skips_comm_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        assert_eq!(parse_stat_start(stat), Some(12345));
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        assert_eq!(parse_stat_start(zombie), None);
    }

    #[test]
    fn this_process_is_alive() {
        let me = std::process::id() as i32;
        let start = proc_start_time(me);
        assert!(start.is_some());
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start.map(|s| s + 1)));
    }
}
