//! The terminal UI's state machine: which screen, which host and service
//! are selected, which time columns, whether failsh is connected. Pure — no
//! terminal, no socket — so keys and screens are unit-tested; the loop in
//! [`super::run`] feeds it keys and snapshots and draws it.
//!
//! Keys (the original's, lynx-like): `h` host list; `c` toggles the time
//! columns and shows the host list; `l`/← the services on the selected
//! host; `s`/→ the selected service's details; Tab switches between the
//! host list and the service screen last shown; ↑/↓ (`k`/`j`) move the
//! selection; `q` (or Ctrl-C) quits.

use failover::monitor::{HostStatus, Snapshot};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tracing::debug;

use crate::net::Update;
use crate::presence::{self, Presence};

/// What the screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The hosts of failsh's config.
    Hosts,
    /// The services present on the selected host.
    Services,
    /// The selected service in full.
    Detail,
}

/// The time columns of the host list, toggled with `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Times {
    /// When a call to the host's faild last succeeded, and last failed.
    #[default]
    OkFailure,
    /// When failsh last reached the faild ("last connect", the last answered
    /// call) and when it last tried ("last call", answered or not).
    ConnectCall,
}

/// The connection to failsh as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// No snapshot yet, no failure yet.
    Connecting,
    Connected,
    /// Lost (or never made); the follower is retrying.
    Lost(String),
}

#[derive(Debug)]
pub struct App {
    /// `host:port` of failsh's monitor port, for the title.
    pub target: String,
    snapshot: Option<Snapshot>,
    link: Link,
    screen: Screen,
    /// The service screen Tab goes back to.
    service_screen: Screen,
    times: Times,
    /// Selections by name, so they stay put when a snapshot reorders or
    /// drops entries; a vanished name falls back to the first entry.
    host: Option<String>,
    service: Option<String>,
    quit: bool,
}

impl App {
    pub fn new(target: String) -> App {
        App {
            target,
            snapshot: None,
            link: Link::Connecting,
            screen: Screen::Hosts,
            service_screen: Screen::Services,
            times: Times::default(),
            host: None,
            service: None,
            quit: false,
        }
    }

    pub fn screen(&self) -> Screen {
        self.screen
    }

    pub fn times(&self) -> Times {
        self.times
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// A snapshot arrived, or the connection was lost.
    pub fn update(&mut self, update: Update) {
        match update {
            Update::Snapshot(s) => {
                if self.host.is_none() {
                    // Start on the local host: its service list has them all.
                    self.host = s
                        .hosts
                        .iter()
                        .find(|h| presence::is_local(&h.name))
                        .map(|h| h.name.clone());
                }
                self.snapshot = Some(*s);
                self.link = Link::Connected;
            }
            Update::Lost(why) => self.link = Link::Lost(why),
        }
    }

    /// The selected host: the one chosen, else the first.
    pub fn selected_host(&self) -> Option<&HostStatus> {
        let hosts = &self.snapshot.as_ref()?.hosts;
        self.host
            .as_ref()
            .and_then(|name| hosts.iter().find(|h| &h.name == name))
            .or_else(|| hosts.first())
    }

    fn host_index(&self) -> Option<usize> {
        let hosts = &self.snapshot.as_ref()?.hosts;
        let selected = self.selected_host()?;
        hosts.iter().position(|h| h.name == selected.name)
    }

    /// The services present on the selected host.
    pub fn services_here(&self) -> Vec<Presence<'_>> {
        match (self.snapshot.as_ref(), self.selected_host()) {
            (Some(s), Some(h)) => presence::services_on(s, &h.name),
            _ => Vec::new(),
        }
    }

    /// Index of the selected service in [`App::services_here`].
    pub fn service_index(&self) -> Option<usize> {
        let here = self.services_here();
        if here.is_empty() {
            return None;
        }
        Some(
            self.service
                .as_ref()
                .and_then(|name| here.iter().position(|p| &p.service.name == name))
                .unwrap_or(0),
        )
    }

    /// The selected service, as present on the selected host.
    pub fn selected_service(&self) -> Option<Presence<'_>> {
        let i = self.service_index()?;
        self.services_here().get(i).copied()
    }

    /// Handles one key press.
    pub fn key(&mut self, key: KeyEvent) {
        if key.kind != KeyEventKind::Press {
            return;
        }
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => self.quit = true,
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('h') => self.screen = Screen::Hosts,
            KeyCode::Char('c') => {
                self.times = match self.times {
                    Times::OkFailure => Times::ConnectCall,
                    Times::ConnectCall => Times::OkFailure,
                };
                self.screen = Screen::Hosts;
            }
            KeyCode::Char('l') | KeyCode::Left => self.show(Screen::Services),
            KeyCode::Char('s') | KeyCode::Right => {
                if self.selected_service().is_some() {
                    self.show(Screen::Detail);
                } else {
                    self.show(Screen::Services);
                }
            }
            KeyCode::Tab | KeyCode::BackTab => match self.screen {
                Screen::Hosts => {
                    let back = if self.selected_service().is_some() {
                        self.service_screen
                    } else {
                        Screen::Services
                    };
                    self.show(back);
                }
                Screen::Services | Screen::Detail => self.screen = Screen::Hosts,
            },
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Home => self.step(isize::MIN),
            KeyCode::End => self.step(isize::MAX),
            _ => return,
        }
        debug!(target: "ui", "key {:?}: {:?}, host {:?}, service {:?}", key.code, self.screen, self.host, self.service);
    }

    fn show(&mut self, screen: Screen) {
        self.screen = screen;
        self.service_screen = screen;
    }

    /// Moves the selection of the current screen by `by` (clamped).
    fn step(&mut self, by: isize) {
        let moved = |i: usize, len: usize| i.saturating_add_signed(by).min(len.saturating_sub(1));
        match self.screen {
            Screen::Hosts => {
                let Some(i) = self.host_index() else { return };
                let hosts = &self.snapshot.as_ref().expect("a host is selected").hosts;
                self.host = Some(hosts[moved(i, hosts.len())].name.clone());
            }
            Screen::Services | Screen::Detail => {
                let Some(i) = self.service_index() else {
                    return;
                };
                let here = self.services_here();
                let name = here[moved(i, here.len())].service.name.clone();
                self.service = Some(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample;

    pub(crate) fn press(app: &mut App, keys: &[KeyCode]) {
        for k in keys {
            app.key(KeyEvent::from(*k));
        }
    }

    fn app() -> App {
        let mut app = App::new("127.0.0.2:1848".into());
        app.update(Update::Snapshot(Box::new(sample())));
        app
    }

    fn host(app: &App) -> &str {
        &app.selected_host().unwrap().name
    }

    fn service(app: &App) -> &str {
        &app.selected_service().unwrap().service.name
    }

    #[test]
    fn starts_on_the_host_list_with_the_local_host() {
        let app = app();
        assert_eq!(app.screen(), Screen::Hosts);
        assert_eq!(host(&app), "localhost");
        assert_eq!(app.link(), &Link::Connected);
        assert_eq!(app.services_here().len(), 2);
    }

    #[test]
    fn screens_follow_the_original_keys() {
        use KeyCode::*;
        let mut app = app();
        press(&mut app, &[Char('l')]);
        assert_eq!(app.screen(), Screen::Services);
        press(&mut app, &[Char('s')]);
        assert_eq!(app.screen(), Screen::Detail);
        press(&mut app, &[Char('h')]);
        assert_eq!(app.screen(), Screen::Hosts);
        press(&mut app, &[Right]);
        assert_eq!(app.screen(), Screen::Detail);
        press(&mut app, &[Left]);
        assert_eq!(app.screen(), Screen::Services);
        press(&mut app, &[Char('c')]);
        assert_eq!(
            (app.screen(), app.times()),
            (Screen::Hosts, Times::ConnectCall)
        );
        press(&mut app, &[Char('c')]);
        assert_eq!(app.times(), Times::OkFailure);
        press(&mut app, &[Char('x'), F(1)]);
        assert_eq!(app.screen(), Screen::Hosts);
        assert!(!app.should_quit());
        press(&mut app, &[Char('q')]);
        assert!(app.should_quit());
        let mut app = self::app();
        app.key(KeyEvent::new(Char('c'), KeyModifiers::CONTROL));
        assert!(app.should_quit());
    }

    #[test]
    fn tab_goes_back_to_the_service_screen_last_shown() {
        use KeyCode::*;
        let mut app = app();
        press(&mut app, &[Tab]);
        assert_eq!(app.screen(), Screen::Services);
        press(&mut app, &[Tab]);
        assert_eq!(app.screen(), Screen::Hosts);
        press(&mut app, &[Char('s'), Tab]);
        assert_eq!(app.screen(), Screen::Hosts);
        press(&mut app, &[Tab]);
        assert_eq!(app.screen(), Screen::Detail);
    }

    #[test]
    fn arrows_and_jk_move_the_selection_of_the_screen_shown() {
        use KeyCode::*;
        let mut app = app();
        press(&mut app, &[Down]);
        assert_eq!(host(&app), "macbeth");
        press(&mut app, &[Char('j'), Char('j'), Down]);
        assert_eq!(host(&app), "ophelia", "stops at the end");
        press(&mut app, &[Char('k')]);
        assert_eq!(host(&app), "macbeth");
        press(&mut app, &[Char('l')]);
        assert_eq!(service(&app), "vip");
        press(&mut app, &[Char('j')]);
        assert_eq!(service(&app), "www");
        assert_eq!(app.selected_service().unwrap().peer.unwrap().state, "FAIL");
        press(&mut app, &[Char('s'), Up]);
        assert_eq!((app.screen(), service(&app)), (Screen::Detail, "vip"));
        press(&mut app, &[Up, Home]);
        assert_eq!(service(&app), "vip");
        press(&mut app, &[End]);
        assert_eq!(service(&app), "www");
        press(&mut app, &[Char('h'), Home]);
        assert_eq!(host(&app), "localhost");
    }

    #[test]
    fn details_need_a_service() {
        use KeyCode::*;
        let mut app = app();
        let mut s = sample();
        s.hosts.push(HostStatus {
            name: "idle".into(),
            ..s.hosts[1].clone()
        });
        app.update(Update::Snapshot(Box::new(s)));
        press(&mut app, &[End]);
        assert_eq!(host(&app), "idle");
        press(&mut app, &[Char('s')]);
        assert_eq!(app.screen(), Screen::Services);
        assert!(app.selected_service().is_none());
        press(&mut app, &[Down, Tab, Tab]);
        assert_eq!(app.screen(), Screen::Services);
    }

    #[test]
    fn selections_survive_new_snapshots_and_losses() {
        use KeyCode::*;
        let mut app = app();
        press(&mut app, &[Down, Char('l'), Down]);
        let mut s = sample();
        s.hosts.reverse();
        s.services.reverse();
        app.update(Update::Snapshot(Box::new(s.clone())));
        assert_eq!((host(&app), service(&app)), ("macbeth", "www"));
        app.update(Update::Lost("refused".into()));
        assert_eq!(app.link(), &Link::Lost("refused".into()));
        assert_eq!(host(&app), "macbeth", "the last state stays shown");
        s.hosts.retain(|h| h.name != "macbeth");
        app.update(Update::Snapshot(Box::new(s)));
        assert_eq!(app.link(), &Link::Connected);
        assert_eq!(host(&app), "ophelia", "gone: the first host");
    }

    #[test]
    fn keys_without_a_snapshot_do_no_harm() {
        use KeyCode::*;
        let mut app = App::new("x:1".into());
        press(&mut app, &[Down, Up, Char('l'), Down, Char('s'), Tab, End]);
        assert!(app.selected_host().is_none() && app.selected_service().is_none());
        assert_eq!(app.link(), &Link::Connecting);
    }
}
