//! Names that clients, logs, metrics and `system` tables show for job states and
//! gRPC status codes: defined once, here, for the server and the CLI alike.

use crate::v1::JobState;

/// The gRPC status code names, by code number (0 = OK … 16 = UNAUTHENTICATED).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `CANCELLED`: a job a user cancelled.
pub const CANCELLED: &str = CODE_NAMES[1];
/// `ABORTED`: a job the server stopped (it was running when the server went down).
pub const ABORTED: &str = CODE_NAMES[10];
/// `INTERNAL`: a job that crashed.
pub const INTERNAL: &str = CODE_NAMES[13];
/// `UNAVAILABLE`: a job stopped at shutdown (running it again may succeed).
pub const UNAVAILABLE: &str = CODE_NAMES[14];

/// The name of gRPC status code `code` (`UNKNOWN` for a number outside the range).
pub fn code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The number of the gRPC status code named `name` (INTERNAL = 13 when unknown).
pub fn code_of(name: &str) -> i32 {
    CODE_NAMES
        .iter()
        .position(|n| *n == name)
        .map_or(13, |i| i as i32)
}

/// Whether a job in `state` has ended.
pub fn is_terminal(state: i32) -> bool {
    state != JobState::Running as i32 && state != JobState::Unspecified as i32
}

/// `running`, `succeeded`, `failed`, `cancelled` (`unknown` for anything else).
pub fn state_name(state: i32) -> &'static str {
    match JobState::try_from(state).unwrap_or(JobState::Unspecified) {
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        JobState::Unspecified => "unknown",
    }
}

/// [`state_name`] in capitals, as `system.jobs` and the JSON job list show it
/// (`UNSPECIFIED` for anything else).
pub fn state_label(state: i32) -> &'static str {
    match JobState::try_from(state).unwrap_or(JobState::Unspecified) {
        JobState::Running => "RUNNING",
        JobState::Succeeded => "SUCCEEDED",
        JobState::Failed => "FAILED",
        JobState::Cancelled => "CANCELLED",
        JobState::Unspecified => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_round_trip() {
        for code in 0..17 {
            assert_eq!(code_of(code_name(code)), code);
        }
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN");
        assert_eq!(code_of("NO_SUCH_CODE"), 13);
    }

    #[test]
    fn job_states() {
        assert!(!is_terminal(JobState::Running as i32));
        assert!(is_terminal(JobState::Cancelled as i32));
        assert_eq!(state_name(JobState::Failed as i32), "failed");
        assert_eq!(state_label(JobState::Succeeded as i32), "SUCCEEDED");
    }
}
