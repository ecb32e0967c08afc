//! A child process run to its end, with what it printed kept for assertions.

use std::fmt;
use std::io::ErrorKind;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// What one command did.
pub(crate) struct ProcessRun {
    command_line: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl ProcessRun {
    /// Runs `command` (shown as `command_line` in messages) to its end, with `input` on its
    /// standard input (else an empty one); panics if it cannot start or outlives `timeout`.
    pub(crate) async fn of(
        command_line: String,
        command: std::process::Command,
        input: Option<&str>,
        timeout: Duration,
    ) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut command = tokio::process::Command::from(command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                "`{program}` is not on PATH: these tests run it, install it (scripts/check.sh does)"
            ),
            Err(error) => panic!("start `{command_line}`: {error}"),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading its input is not this helper's concern.
            let _ = stdin.write_all(input.unwrap_or_default().as_bytes()).await;
        }

        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => panic!("`{command_line}` did not finish in {timeout:?}"),
            Ok(output) => output.unwrap_or_else(|error| panic!("run `{command_line}`: {error}")),
        };
        Self::new(
            command_line,
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    pub(crate) fn new(
        command_line: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    ) -> Self {
        Self {
            command_line,
            status,
            stdout,
            stderr,
        }
    }

    pub(crate) fn assert_success(&self) {
        assert!(self.status.success(), "expected success from {self}");
    }

    pub(crate) fn assert_failure(&self) {
        assert!(!self.status.success(), "expected a failure from {self}");
    }

    /// Whether stdout or stderr mentions `text`.
    pub(crate) fn mentions(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }
}

#[allow(
    dead_code,
    reason = "only some test binaries read a command's output; npm_install.rs does not"
)]
impl ProcessRun {
    pub(crate) fn stdout(&self) -> &str {
        &self.stdout
    }

    /// Asserts success and returns stdout, trimmed.
    pub(crate) fn success_stdout(&self) -> &str {
        self.assert_success();
        self.stdout.trim()
    }

    /// Asserts a failure that mentions `text` (an npm error code such as `E403`).
    pub(crate) fn assert_failure_mentioning(&self, text: &str) {
        self.assert_failure();
        assert!(self.mentions(text), "expected {text:?} in {self}");
    }
}

impl fmt::Display for ProcessRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command_line, self.status, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for ProcessRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
