//! Runs a command that insists on a terminal, answering its prompts.
//!
//! npm's `login` reads the user name and password through a line editor that needs a TTY:
//! with a pipe on stdin it stops with "Exit handler never called". util-linux's `script`
//! gives the command a pseudo-terminal and relays our pipe to it; each answer is written
//! only once its prompt has shown up, since a line typed early can be swallowed when the
//! editor resets the terminal.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use super::process::ProcessRun;

/// Runs `command` under a pseudo-terminal; each `(prompt, answer)` in turn is typed when
/// `prompt` appears in what the terminal shows. The whole run must end within `timeout`.
pub(crate) async fn run_answering(
    command_line: String,
    command: &std::process::Command,
    answers: &[(&str, &str)],
    timeout: Duration,
) -> ProcessRun {
    let mut child = match under_script(command).spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "`script` (util-linux; Debian package bsdutils) is not on PATH: `{command_line}` \
             needs a terminal and the tests give it one with `script`, install it"
        ),
        Err(error) => panic!("start `{command_line}` under `script`: {error}"),
    };
    let stderr = tokio::spawn(read_all(child.stderr.take()));

    let mut screen = Vec::new();
    let conversation = converse(&mut child, &mut screen, answers);
    let status = match tokio::time::timeout(timeout, conversation).await {
        Ok(status) => status.unwrap_or_else(|error| panic!("run `{command_line}`: {error}")),
        Err(_) => panic!(
            "`{command_line}` did not finish in {timeout:?}; the terminal showed:\n{}",
            readable(&screen)
        ),
    };

    let stderr = stderr.await.unwrap_or_default();
    ProcessRun::new(command_line, status, readable(&screen), readable(&stderr))
}

/// `script -qec '<command>' /dev/null` with the command's environment and directory.
fn under_script(command: &std::process::Command) -> Command {
    let words: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(shell_quote)
        .collect();
    let mut script = Command::new("script");
    script
        .args(["--quiet", "--return", "--command"])
        .arg(words.join(" "))
        .arg("/dev/null")
        // `script` runs the command with `$SHELL -c`; whatever the machine's shell is,
        // the quoting above is for a POSIX shell.
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        script.current_dir(dir);
    }
    script
}

fn shell_quote(word: &OsStr) -> String {
    format!("'{}'", word.to_string_lossy().replace('\'', r"'\''"))
}

/// Reads the terminal until the command exits, typing each answer after its prompt. Our
/// end of stdin stays open until then: closing it early would end the terminal's input.
async fn converse(
    child: &mut Child,
    screen: &mut Vec<u8>,
    answers: &[(&str, &str)],
) -> std::io::Result<ExitStatus> {
    let mut stdin = child.stdin.take().ok_or(ErrorKind::BrokenPipe)?;
    let mut stdout = child.stdout.take().ok_or(ErrorKind::BrokenPipe)?;
    let mut answers = answers.iter();
    let mut next = answers.next();
    let mut searched_up_to = 0;
    let mut chunk = [0; 4096];

    loop {
        let read = stdout.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        screen.extend_from_slice(&chunk[..read]);
        while let Some((prompt, answer)) = next {
            let Some(at) = find(&screen[searched_up_to..], prompt.as_bytes()) else {
                break;
            };
            searched_up_to += at + prompt.len();
            stdin.write_all(format!("{answer}\n").as_bytes()).await?;
            stdin.flush().await?;
            next = answers.next();
        }
    }

    let status = child.wait().await;
    drop(stdin);
    status
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

async fn read_all(stream: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut stream) = stream {
        let _ = stream.read_to_end(&mut bytes).await;
    }
    bytes
}

/// The terminal's output without colour and cursor escapes or carriage returns.
fn readable(screen: &[u8]) -> String {
    let text = String::from_utf8_lossy(screen);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' if chars.peek() == Some(&'[') => {
                // A CSI sequence ends with its first byte in `@`..=`~`.
                for c in chars.by_ref().skip(1) {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}
