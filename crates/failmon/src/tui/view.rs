//! Drawing the [`App`]: a title line (failsh, target, connection), the
//! screen, and a line of keys. A pure function of the app's state, so the
//! same state always draws the same screen (tested with `TestBackend`).

use failover::monitor::{HostStatus, ServiceStatus, Snapshot, age};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::app::{App, Link, Screen, Times};
use crate::presence::{self, Presence};
use crate::when::{ago, health, last_call, rtt, seconds};

const KEYS: &str = " h hosts  c times  l/← services  s/→ details  Tab switch  ↑↓/jk move  q quit";

/// The colour of a state word.
fn state_style(state: &str) -> Style {
    match state {
        "UP" | "ok" => Style::new().fg(Color::Green),
        "RECOVER" => Style::new().fg(Color::Yellow),
        "FAIL" | "failing" => Style::new().fg(Color::Red),
        "INDOUBT" => Style::new().fg(Color::Magenta),
        // A configuration error (a peer name that does not resolve).
        "UNRESOLVED" => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::new(),
    }
}

fn state_cell(state: &str) -> Cell<'static> {
    Cell::from(state.to_string()).style(state_style(state))
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

/// A host's name as listed: the local one with failsh's node name.
fn host_label(snapshot: &Snapshot, h: &HostStatus) -> String {
    if presence::is_local(&h.name) {
        format!("{} ({})", h.name, snapshot.host)
    } else {
        h.name.clone()
    }
}

fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

impl App {
    /// Draws the whole screen.
    pub fn render(&self, frame: &mut Frame) {
        let [title, body, keys] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(self.title()), title);
        frame.render_widget(Paragraph::new(KEYS).dim(), keys);
        let Some(snapshot) = self.snapshot() else {
            let text = match self.link() {
                Link::Lost(why) => format!("disconnected, retrying: {why}"),
                _ => format!("connecting to {}…", self.target),
            };
            frame.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: true })
                    .block(Block::new().borders(Borders::ALL)),
                body,
            );
            return;
        };
        match self.screen() {
            Screen::Hosts => self.render_hosts(frame, body, snapshot),
            Screen::Services => self.render_services(frame, body, snapshot),
            Screen::Detail => self.render_detail(frame, body, snapshot),
        }
    }

    fn title(&self) -> Line<'static> {
        let mut spans = vec![Span::from(" failmon ").reversed()];
        match self.snapshot() {
            Some(s) => spans.push(Span::from(format!(
                " failsh on {} via {} ",
                s.host, self.target
            ))),
            None => spans.push(Span::from(format!(" {} ", self.target))),
        }
        spans.push(match self.link() {
            Link::Connecting => Span::from("connecting").yellow(),
            Link::Connected => Span::from("connected").green(),
            Link::Lost(why) => Span::from(format!("disconnected, retrying: {why}"))
                .red()
                .bold(),
        });
        Line::from(spans)
    }

    fn render_hosts(&self, frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
        let [list, info] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(area);
        let (first, second, what) = match self.times() {
            Times::OkFailure => ("Last ok", "Last failure", "last ok / last failure"),
            Times::ConnectCall => ("Last connect", "Last call", "last connect / last call"),
        };
        let header = Row::new([
            "Host",
            "faild",
            "Status",
            first,
            second,
            "RTT",
            "Last error",
        ])
        .bold();
        let rows = snapshot.hosts.iter().map(|h| {
            let (a, b) = match self.times() {
                Times::OkFailure => (ago(snapshot, h.last_ok), ago(snapshot, h.last_failure)),
                Times::ConnectCall => (
                    ago(snapshot, h.last_ok),
                    match last_call(h) {
                        Some((t, ok)) => format!(
                            "{} {}",
                            ago(snapshot, Some(t)),
                            if ok { "ok" } else { "failed" }
                        ),
                        None => "never".into(),
                    },
                ),
            };
            Row::new([
                Cell::from(host_label(snapshot, h)),
                Cell::from(h.address.clone()),
                state_cell(health(h)),
                Cell::from(a),
                Cell::from(b),
                Cell::from(rtt(h)),
                Cell::from(dash(h.last_error.as_deref())),
            ])
        });
        let widths = [
            Constraint::Length(20),
            Constraint::Length(21),
            Constraint::Length(7),
            Constraint::Length(12),
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Fill(1),
        ];
        let table = Table::new(rows, widths)
            .header(header)
            .row_highlight_style(selected_style())
            .highlight_symbol("> ")
            .block(Block::new().borders(Borders::ALL).title(format!(
                " Hosts of failsh on {} (times: {what}; c toggles) ",
                snapshot.host
            )));
        let mut state = TableState::new().with_selected(self.host_index_for_view());
        frame.render_stateful_widget(table, list, &mut state);

        let text = match self.selected_host() {
            Some(h) => {
                let here = presence::services_on(snapshot, &h.name).len();
                format!(
                    "{} at {}: {} service(s) (l lists them); {} calls, {} failed; {}; last error: {}",
                    host_label(snapshot, h),
                    h.address,
                    here,
                    h.calls,
                    h.failures,
                    h.signing(),
                    dash(h.last_error.as_deref()),
                )
            }
            None => "no hosts".into(),
        };
        frame.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::TOP)),
            info,
        );
    }

    fn host_index_for_view(&self) -> Option<usize> {
        let s = self.snapshot()?;
        let h = self.selected_host()?;
        s.hosts.iter().position(|x| x.name == h.name)
    }

    fn render_services(&self, frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
        let Some(host) = self.selected_host() else {
            frame.render_widget(
                Paragraph::new("no hosts").block(Block::new().borders(Borders::ALL)),
                area,
            );
            return;
        };
        let here = self.services_here();
        let local = presence::is_local(&host.name);
        let title = if local {
            format!(
                " Services on {}: the local faild's state ",
                host_label(snapshot, host)
            )
        } else {
            format!(" Services on {}: its state as failsh saw it ", host.name)
        };
        let block = Block::new().borders(Borders::ALL).title(title);
        if here.is_empty() {
            frame.render_widget(
                Paragraph::new(format!(
                    "no service names {} as a master or slave",
                    host.name
                ))
                .block(block),
                area,
            );
            return;
        }
        let (header, widths) = if local {
            (
                Row::new([
                    "Service", "Local", "Running", "Internal", "Busy", "Decision", "Reason",
                ]),
                [
                    Constraint::Length(20),
                    Constraint::Length(11),
                    Constraint::Length(7),
                    Constraint::Length(8),
                    Constraint::Length(12),
                    Constraint::Length(9),
                    Constraint::Fill(1),
                ],
            )
        } else {
            (
                Row::new([
                    "Service", "Role", "State", "Answered", "Local", "Decision", "Reason",
                ]),
                [
                    Constraint::Length(20),
                    Constraint::Length(6),
                    Constraint::Length(8),
                    Constraint::Length(12),
                    Constraint::Length(11),
                    Constraint::Length(9),
                    Constraint::Fill(1),
                ],
            )
        };
        let rows = here.iter().map(|p| service_row(p));
        let table = Table::new(rows, widths)
            .header(header.bold())
            .row_highlight_style(selected_style())
            .highlight_symbol("> ")
            .block(block);
        let mut state = TableState::new().with_selected(self.service_index());
        frame.render_stateful_widget(table, area, &mut state);
    }

    fn render_detail(&self, frame: &mut Frame, area: Rect, snapshot: &Snapshot) {
        let (Some(host), Some(p)) = (self.selected_host(), self.selected_service()) else {
            frame.render_widget(
                Paragraph::new("no service selected (l lists the services)")
                    .block(Block::new().borders(Borders::ALL)),
                area,
            );
            return;
        };
        let title = format!(
            " Service {} (selected on {}) ",
            p.service.name,
            host_label(snapshot, host)
        );
        frame.render_widget(
            Paragraph::new(detail_lines(snapshot, p.service, &host.name))
                .wrap(Wrap { trim: false })
                .block(Block::new().borders(Borders::ALL).title(title)),
            area,
        );
    }
}

/// One row of a service list.
fn service_row(p: &Presence) -> Row<'static> {
    let s = p.service;
    let decision = dash(s.decision.as_deref());
    let reason = dash(s.reason.as_deref());
    match p.peer {
        None => Row::new([
            Cell::from(s.name.clone()),
            state_cell(&s.local),
            Cell::from(yes(s.running)),
            state_cell(s.internal.as_deref().unwrap_or("-")),
            Cell::from(dash(s.busy.as_deref())),
            Cell::from(decision),
            Cell::from(reason),
        ]),
        Some(peer) => Row::new([
            Cell::from(s.name.clone()),
            Cell::from(peer.role.clone()),
            state_cell(&peer.state),
            Cell::from(
                peer.age_s
                    .map_or("never".into(), |a| format!("{} ago", age(a))),
            ),
            state_cell(&s.local),
            Cell::from(decision),
            Cell::from(reason),
        ]),
    }
}

fn label(name: &str) -> Span<'static> {
    Span::from(format!("{name:<15}")).bold()
}

/// The detail screen's text; the peer row of `host` is marked.
fn detail_lines(snapshot: &Snapshot, s: &ServiceStatus, host: &str) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(vec![
            label("local state"),
            Span::styled(format!("{:<10}", s.local), state_style(&s.local)),
            Span::from(format!(" running {}", yes(s.running))),
            Span::from("   internal "),
            Span::styled(
                dash(s.internal.as_deref()),
                state_style(s.internal.as_deref().unwrap_or("")),
            ),
            Span::from(format!("   busy {}", dash(s.busy.as_deref()))),
        ]),
        Line::from(vec![
            label("interval"),
            Span::from(format!(
                "{}, peers count as FAIL after {} in doubt",
                seconds(s.interval_s),
                seconds(s.timeout_s)
            )),
        ]),
        Line::from(vec![
            label("last decision"),
            Span::from(format!(
                "{}: {}",
                dash(s.decision.as_deref()),
                dash(s.reason.as_deref())
            )),
        ]),
        Line::from(vec![
            label("last hook"),
            match &s.last_hook {
                Some(h) => Span::styled(
                    format!(
                        "{} {}, took {}, {}: {}",
                        h.kind,
                        ago(snapshot, Some(h.at)),
                        seconds(h.duration_s),
                        if h.ok { "ok" } else { "failed" },
                        h.result
                    ),
                    if h.ok {
                        Style::new()
                    } else {
                        state_style("FAIL")
                    },
                ),
                None => Span::from("none yet"),
            },
        ]),
        Line::from(vec![
            label("last change"),
            Span::from(format!(
                "{} ({} since failsh started)",
                ago(snapshot, s.last_transition),
                s.transitions
            )),
        ]),
        Line::from(""),
    ];
    if s.peers.is_empty() {
        lines.push(Line::from(vec![label("peers"), Span::from("none")]));
    } else {
        lines.push(Line::from(vec![
            label("peers"),
            Span::from(format!(
                "  {:<20} {:<7} {:<9} {}",
                "HOST", "ROLE", "STATE", "LAST ANSWER"
            )),
        ]));
        for peer in &s.peers {
            let mark = if peer.host == host { "> " } else { "  " };
            lines.push(Line::from(vec![
                label(""),
                Span::from(format!("{mark}{:<20} {:<7} ", peer.host, peer.role)),
                Span::styled(format!("{:<9}", peer.state), state_style(&peer.state)),
                Span::from(format!(
                    " {}",
                    peer.age_s
                        .map_or("never".into(), |a| format!("{} ago", age(a)))
                )),
            ]));
        }
    }
    lines.push(Line::from(""));
    if s.hooks.is_empty() {
        lines.push(Line::from(vec![
            label("hook totals"),
            Span::from("no hook run yet"),
        ]));
    } else {
        lines.push(Line::from(vec![
            label("hook totals"),
            Span::from(format!(
                "  {:<20} {:>5} {:>9} {:>10}",
                "HOOK", "RUNS", "FAILURES", "TIME"
            )),
        ]));
        for h in &s.hooks {
            lines.push(Line::from(vec![
                label(""),
                Span::from(format!(
                    "  {:<20} {:>5} {:>9} {:>10}",
                    h.kind,
                    h.runs,
                    h.failures,
                    seconds(h.seconds)
                )),
            ]));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Update;
    use crate::sample::sample;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent};

    /// The app drawn on a 120×24 test terminal, as lines of text.
    fn screen(app: &App) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(120, 24)).unwrap();
        terminal.draw(|f| app.render(f)).unwrap();
        let buf = terminal.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn has(screen: &[String], text: &str) -> bool {
        screen.iter().any(|l| l.contains(text))
    }

    /// The line containing `text`, squeezed to single blanks.
    fn line(screen: &[String], text: &str) -> String {
        let l = screen
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no {text:?} on\n{}", screen.join("\n")));
        l.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Every line, squeezed to single blanks.
    fn squeezed(screen: &[String]) -> Vec<String> {
        screen
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    fn app(keys: &[KeyCode]) -> App {
        let mut app = App::new("127.0.0.2:1848".into());
        app.update(Update::Snapshot(Box::new(sample())));
        for k in keys {
            app.key(KeyEvent::from(*k));
        }
        app
    }

    #[test]
    fn host_list() {
        let s = screen(&app(&[]));
        assert!(
            s[0].contains("failmon  failsh on lukretia via 127.0.0.2:1848 connected"),
            "{}",
            s[0]
        );
        assert!(has(
            &s,
            "Hosts of failsh on lukretia (times: last ok / last failure; c toggles)"
        ));
        assert_eq!(
            line(&s, "Host "),
            "│ Host faild Status Last ok Last failure RTT Last error │"
        );
        assert_eq!(
            line(&s, "localhost (lukretia)"),
            "│> localhost (lukretia) 127.0.0.2:1291 ok 0.5s ago never 0.25ms - │"
        );
        assert_eq!(
            line(&s, "ophelia "),
            "│ ophelia 127.0.0.4:1291 failing 1m00s ago 2.0s ago - connection refused <&> │"
        );
        assert!(has(
            &s,
            "localhost (lukretia) at 127.0.0.2:1291: 2 service(s) (l lists them)"
        ));
        assert!(s[23].contains("h hosts  c times  l/← services"));
    }

    #[test]
    fn host_list_with_connect_and_call_times() {
        let s = screen(&app(&[KeyCode::Char('c'), KeyCode::End]));
        assert!(has(&s, "(times: last connect / last call; c toggles)"));
        assert_eq!(
            line(&s, "Host "),
            "│ Host faild Status Last connect Last call RTT Last error │"
        );
        assert_eq!(
            line(&s, "ophelia "),
            "│> ophelia 127.0.0.4:1291 failing 1m00s ago 2.0s ago failed - connection refused <&> │"
        );
        assert!(has(
            &s,
            "ophelia at 127.0.0.4:1291: 1 service(s) (l lists them); 10 calls, 4 failed; unsigned; last error: connection refused <&>"
        ));
    }

    #[test]
    fn service_list_of_the_local_host() {
        let s = screen(&app(&[KeyCode::Char('l')]));
        assert!(has(
            &s,
            "Services on localhost (lukretia): the local faild's state"
        ));
        assert_eq!(
            line(&s, "Service "),
            "│ Service Local Running Internal Busy Decision Reason │"
        );
        assert_eq!(
            line(&s, "vip "),
            "│> vip UP yes RECLAIM - reclaim slave macbeth is <UP> & \"busy\" │"
        );
        assert_eq!(
            line(&s, "www "),
            "│ www RECOVER no INDOUBT stop hook wait master ophelia is INDOUBT │"
        );
    }

    #[test]
    fn service_list_of_a_peer() {
        let s = screen(&app(&[KeyCode::Down, KeyCode::Left]));
        assert!(has(&s, "Services on macbeth: its state as failsh saw it"));
        assert_eq!(
            line(&s, "Service "),
            "│ Service Role State Answered Local Decision Reason │"
        );
        assert_eq!(
            line(&s, "vip "),
            "│> vip slave RECOVER 0.5s ago UP reclaim slave macbeth is <UP> & \"busy\" │"
        );
        assert_eq!(
            line(&s, "www "),
            "│ www slave FAIL never RECOVER wait master ophelia is INDOUBT │"
        );
    }

    #[test]
    fn service_detail() {
        let s = screen(&app(&[KeyCode::Down, KeyCode::Char('s')]));
        assert!(has(&s, "Service vip (selected on macbeth)"));
        assert_eq!(
            line(&s, "local state"),
            "│local state UP running yes internal RECLAIM busy - │"
        );
        assert_eq!(
            line(&s, "interval"),
            "│interval 1.00s, peers count as FAIL after 3.00s in doubt │"
        );
        assert_eq!(
            line(&s, "last decision"),
            "│last decision reclaim: slave macbeth is <UP> & \"busy\" │"
        );
        assert_eq!(
            line(&s, "last hook"),
            "│last hook start 10s ago, took 0.20s, ok: returned UP │"
        );
        assert_eq!(
            line(&s, "last change"),
            "│last change 10s ago (2 since failsh started) │"
        );
        assert_eq!(
            line(&s, "> macbeth"),
            "│ > macbeth slave RECOVER 0.5s ago │"
        );
        assert_eq!(
            line(&s, "hook totals"),
            "│hook totals HOOK RUNS FAILURES TIME │"
        );
        assert!(
            squeezed(&s).contains(&"│ start 1 0 0.20s │".to_string()),
            "{s:#?}"
        );
    }

    #[test]
    fn service_detail_without_hooks() {
        let s = screen(&app(&[KeyCode::Char('l'), KeyCode::Down, KeyCode::Right]));
        assert!(has(&s, "Service www (selected on localhost (lukretia))"));
        assert!(has(&s, "none yet"));
        assert!(has(&s, "no hook run yet"));
        let rows = squeezed(&s);
        assert!(
            rows.contains(&"│ ophelia master INDOUBT 1m00s ago │".to_string()),
            "{s:#?}"
        );
        assert!(
            rows.contains(&"│ macbeth slave FAIL never │".to_string()),
            "{s:#?}"
        );
    }

    #[test]
    fn a_peer_without_services() {
        let mut a = app(&[]);
        let mut snap = sample();
        snap.hosts.push(HostStatus {
            name: "idle".into(),
            ..snap.hosts[1].clone()
        });
        a.update(Update::Snapshot(Box::new(snap)));
        a.key(KeyEvent::from(KeyCode::End));
        a.key(KeyEvent::from(KeyCode::Char('l')));
        let s = screen(&a);
        assert!(has(&s, "no service names idle as a master or slave"));
    }

    #[test]
    fn disconnected_screens() {
        let mut a = App::new("127.0.0.2:1848".into());
        let s = screen(&a);
        assert!(has(&s, "127.0.0.2:1848 connecting"));
        assert!(has(&s, "connecting to 127.0.0.2:1848…"));
        a.update(Update::Lost(
            "127.0.0.2:1848: cannot connect: refused".into(),
        ));
        let s = screen(&a);
        assert!(has(
            &s,
            "disconnected, retrying: 127.0.0.2:1848: cannot connect: refused"
        ));
        // With a snapshot: the last state stays, the title says it is stale.
        let mut a = app(&[KeyCode::Char('l')]);
        a.update(Update::Lost(
            "127.0.0.2:1848: connection closed by failsh".into(),
        ));
        let s = screen(&a);
        assert!(
            s[0].contains("disconnected, retrying: 127.0.0.2:1848: connection closed by failsh")
        );
        assert!(has(&s, "vip "));
    }
}
