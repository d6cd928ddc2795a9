//! Owning the terminal: raw mode and the alternate screen on `/dev/tty` (so stdout
//! stays free for the picked id), restored on every exit path, panics included.

use std::fs::File;
use std::io::{self, BufWriter};
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Raw mode without the picker's screen (a Session Manager shell).
static RAW: AtomicBool = AtomicBool::new(false);

/// A frame goes out in one write: unbuffered, crossterm wrote every escape sequence
/// and cell run on its own (thousands of writes for a full screen).
pub type Term = Terminal<CrosstermBackend<BufWriter<File>>>;

fn backend(out: File) -> CrosstermBackend<BufWriter<File>> {
    CrosstermBackend::new(BufWriter::with_capacity(1 << 16, out))
}

fn tty() -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

/// The terminal in picker mode; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Term,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        let mut out = tty()?;
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        if let Err(e) = execute!(out, EnterAlternateScreen, Hide) {
            restore();
            return Err(e);
        }
        let terminal = Terminal::new(backend(out)).inspect_err(|_| restore())?;
        Ok(TerminalGuard { terminal })
    }
}

impl TerminalGuard {
    /// Hands the terminal back (cooked mode, main screen, cursor shown), e.g. to ssh.
    pub fn suspend(&mut self) {
        restore();
    }

    /// Takes the terminal again after `suspend` and forces a full redraw.
    pub fn resume(&mut self) -> io::Result<()> {
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = tty()?;
        execute!(out, EnterAlternateScreen, Hide, Clear(ClearType::All))?;
        // A fresh terminal has empty buffers, so the next draw repaints everything
        // (`Terminal::clear` would query the cursor position, racing the input reader).
        self.terminal = Terminal::new(backend(out))?;
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen and raw mode. Idempotent, so the guard, the panic
/// hook and signal paths can all call it.
pub fn restore() {
    restore_raw();
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        if let Ok(mut out) = tty() {
            let _ = execute!(out, LeaveAlternateScreen, Show);
        }
    }
}

/// One line for the user on stderr, `ec2ssh: TEXT`, ending in CR LF: the terminal may
/// be in raw mode (a shell session, or ssh's own around a ProxyCommand).
pub fn say(text: &str) {
    use std::io::Write;
    let _ = write!(io::stderr(), "ec2ssh: {text}\r\n");
}

/// The controlling terminal in raw mode and nothing else (no alternate screen), for a
/// remote shell: every key, Ctrl-C included, becomes bytes. Dropping it, a panic, or
/// [`restore`] puts the terminal back as it was.
pub struct RawMode(());

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        install_panic_hook();
        enable_raw_mode()?;
        RAW.store(true, Ordering::SeqCst);
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_raw();
    }
}

/// Leaves [`RawMode`]'s raw mode. Idempotent.
pub fn restore_raw() {
    if RAW.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
