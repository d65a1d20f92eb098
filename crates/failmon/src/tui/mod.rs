//! The full-screen terminal UI (`-c`, the default), on ratatui with the
//! crossterm backend.
//!
//! Three threads: the follower reads snapshots and reconnects when failsh
//! goes away, the input thread reads keys, and this one owns the screen. Both
//! feed one channel, so the screen is redrawn as soon as either has
//! something — a push shows at once, without polling.

mod app;
mod view;

pub use app::{App, Link, Screen, Times};

use std::io::{self, IsTerminal};
use std::sync::mpsc::{self, Receiver};

use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEvent};

use crate::net::{self, Target, Update};

/// What the screen thread waits for.
enum Event {
    Key(KeyEvent),
    /// The terminal changed size: draw again.
    Resize,
    Update(Update),
    /// Reading the terminal failed; the UI cannot go on.
    InputFailed(io::Error),
}

/// Runs the UI until the user quits. Fails only when there is no usable
/// terminal; an unreachable failsh is shown, and retried, on the screen.
pub fn run(target: &Target) -> io::Result<()> {
    if !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        return Err(io::Error::other(
            "the terminal UI needs a terminal; use -1, -l, --json or -h",
        ));
    }
    let (tx, rx) = mpsc::channel();
    let follower = tx.clone();
    let t = target.clone();
    std::thread::Builder::new()
        .name("follower".into())
        .spawn(move || net::follow(&t, None, |u| follower.send(Event::Update(u)).is_ok()))?;

    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            return Err(e);
        }
    };
    // Keys are read only once the terminal is in raw mode.
    let input = std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let event = match event::read() {
                    Ok(TermEvent::Key(k)) => Event::Key(k),
                    Ok(TermEvent::Resize(..)) => Event::Resize,
                    Ok(_) => continue,
                    Err(e) => Event::InputFailed(e),
                };
                let failed = matches!(event, Event::InputFailed(_));
                if tx.send(event).is_err() || failed {
                    return;
                }
            }
        });
    let result = match input {
        Ok(_) => screen(&mut terminal, &mut App::new(target.to_string()), &rx),
        Err(e) => Err(e),
    };
    ratatui::restore();
    result
}

/// Draws, waits for the next events, applies them all, draws again.
fn screen(terminal: &mut DefaultTerminal, app: &mut App, rx: &Receiver<Event>) -> io::Result<()> {
    loop {
        terminal.draw(|f| app.render(f))?;
        let Ok(first) = rx.recv() else {
            return Ok(());
        };
        for event in std::iter::once(first).chain(rx.try_iter()) {
            match event {
                Event::Key(k) => app.key(k),
                Event::Resize => {}
                Event::Update(u) => app.update(u),
                Event::InputFailed(e) => return Err(e),
            }
            if app.should_quit() {
                return Ok(());
            }
        }
    }
}
