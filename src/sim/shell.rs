//! Shell sessions in the simulator: the default shell document (`SSM-SessionManagerRunShell`)
//! runs `/bin/sh -i` on a local pseudo-terminal, as the agent runs a shell on the
//! instance's. The gateway sends the pty's output as Output payloads, writes the client's
//! Output payloads to it, and applies Size payloads with a pty resize.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::session::messages::{RequestedClientAction, SessionTypeRequest, ACTION_SESSION_TYPE};

/// The document StartSession uses when it names none: the account's shell.
pub const SHELL_DOCUMENT: &str = "SSM-SessionManagerRunShell";

/// Shell documents: the default one and its variants (e.g. an audited
/// `SSM-SessionManagerRunShell-Audit`).
pub fn is_shell_document(name: &str) -> bool {
    name.starts_with(SHELL_DOCUMENT)
}

/// The prompt of the simulated shell, so tests can tell it from the local one.
pub const PROMPT: &str = "sim$ ";

/// The HandshakeRequest actions of a KMS-encrypted shell session: the agent only
/// shakes hands for a `Standard_Stream` session when the session preferences name a
/// KMS key.
pub fn kms_actions(kms_key_id: &str) -> Vec<RequestedClientAction> {
    let challenge: [u8; 16] = rand::random();
    vec![
        RequestedClientAction {
            action_type: ACTION_SESSION_TYPE.into(),
            action_parameters: serde_json::to_value(SessionTypeRequest {
                session_type: "Standard_Stream".into(),
                properties: serde_json::json!({}),
            })
            .unwrap_or_default(),
        },
        RequestedClientAction {
            action_type: "KMSEncryption".into(),
            action_parameters: serde_json::json!({
                "KMSKeyId": kms_key_id,
                "Challenge": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, challenge),
            }),
        },
    ]
}

/// A shell on a pty. Dropping it hangs up the shell's process group and reaps it.
pub struct Shell {
    master: OwnedFd,
    child: Option<Child>,
    output: mpsc::Receiver<Vec<u8>>,
    input: mpsc::UnboundedSender<Vec<u8>>,
    _home: tempfile::TempDir,
}

impl Shell {
    /// Starts `/bin/sh -i` in a fresh session whose controlling terminal is a new pty,
    /// with a small fixed environment and an empty temporary HOME.
    pub fn spawn() -> std::io::Result<Shell> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        resize(&master, 80, 24);
        let home = tempfile::Builder::new()
            .prefix("ec2ssh-sim-home")
            .tempdir()?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-i")
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", home.path())
            .env("PS1", PROMPT)
            .env("TERM", "xterm-256color")
            .env("SHELL", "/bin/sh")
            .current_dir(home.path())
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: runs in the forked child before exec and only makes two system calls
        // (no allocation, no locks): a new session, and the pty on stdin as its
        // controlling terminal, so job control and Ctrl-C work as on a real instance.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // `cmd` holds the parent's copies of the slave; once they are closed, the
        // master reads EIO when the shell (and everything it started) has exited.
        drop(cmd);

        let (out_tx, output) = mpsc::channel(16);
        let mut reader = std::fs::File::from(master.try_clone()?);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: the last process holding the terminal is gone.
                    Err(_) => break,
                }
            }
        });
        let (input, mut in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let mut writer = std::fs::File::from(master.try_clone()?);
        std::thread::spawn(move || {
            while let Some(bytes) = in_rx.blocking_recv() {
                if writer.write_all(&bytes).is_err() {
                    break;
                }
            }
        });
        Ok(Shell {
            master,
            child: Some(child),
            output,
            input,
            _home: home,
        })
    }

    /// Where the client's keystrokes go (written to the pty in order).
    pub fn input(&self) -> mpsc::UnboundedSender<Vec<u8>> {
        self.input.clone()
    }

    /// Applies a Size payload (`{"cols":N,"rows":N}`); anything else is ignored, as
    /// the agent does.
    pub fn resize_json(&self, payload: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let dim = |k: &str| v[k].as_u64().and_then(|n| u16::try_from(n).ok());
        if let (Some(cols), Some(rows)) = (dim("cols"), dim("rows")) {
            if cols > 0 && rows > 0 {
                resize(&self.master, cols, rows);
            }
        }
    }
}

fn resize(master: &OwnedFd, cols: u16, rows: u16) {
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(e) = rustix::termios::tcsetwinsize(master.as_fd(), size) {
        tracing::debug!(error = %e, "pty resize failed");
    }
}

/// The shell's next output, as the pty gave it; `None` once the shell (and everything
/// it started) has exited. Pending without a shell.
pub async fn next_output(shell: &mut Option<Shell>) -> Option<Vec<u8>> {
    match shell {
        Some(shell) => shell.output.recv().await,
        None => std::future::pending().await,
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The shell leads its own session and process group: hang up all of it
            // (what the terminal going away does), then reap it off the runtime.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::HUP);
            }
            std::thread::spawn(move || {
                for _ in 0..20 {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_documents() {
        assert!(is_shell_document("SSM-SessionManagerRunShell"));
        assert!(is_shell_document("SSM-SessionManagerRunShell-Audit"));
        assert!(!is_shell_document("AWS-StartSSHSession"));
    }

    #[test]
    fn kms_handshake_names_the_key_after_the_session_type() {
        let actions = kms_actions("alias/sessions");
        assert_eq!(actions[0].action_type, ACTION_SESSION_TYPE);
        assert_eq!(
            actions[0].action_parameters["SessionType"],
            "Standard_Stream"
        );
        assert_eq!(actions[1].action_type, "KMSEncryption");
        assert_eq!(actions[1].action_parameters["KMSKeyId"], "alias/sessions");
    }

    #[tokio::test]
    async fn a_shell_runs_on_a_pty_of_the_size_asked_for() {
        let mut shell = Some(Shell::spawn().unwrap());
        let s = shell.as_ref().unwrap();
        s.resize_json(br#"{"cols":91,"rows":17}"#);
        s.input()
            .send(b"stty size; echo $((6*7))x; exit\n".to_vec())
            .unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Some(bytes) = tokio::time::timeout_at(deadline, next_output(&mut shell))
            .await
            .expect("the shell exits")
        {
            seen.extend_from_slice(&bytes);
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(text.contains("17 91"), "{text}");
        assert!(text.contains("42x"), "{text}");
        assert!(text.contains(PROMPT), "{text}");
    }
}
