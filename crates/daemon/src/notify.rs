//! Readiness notification for systemd `Type=notify` units (sd_notify(3)):
//! `READY=1` once the daemon serves, `STOPPING=1` when it shuts down, and a
//! `STATUS=` line naming the error when it fails, so that `systemctl start`
//! returns only once faild answers (the unit's `ExecStartPost=` may call
//! `failc` at once) and `systemctl status` shows why a start failed.
//!
//! The messages are the `sd-notify` crate's [`NotifyState`]s, but the socket
//! address is kept here instead of being read from `NOTIFY_SOCKET` at each
//! call as `sd_notify::notify` does: the variable is taken out of the
//! environment while the process is still single-threaded, so that the
//! programs failsh's hooks start never inherit it (systemd would log every
//! message they send to it as coming from the wrong process, and a program
//! that speaks sd_notify itself could be misled into thinking it is the
//! unit's main process). Unsetting it later, as the crate's
//! `notify_and_unset_env` does, is unsound once the runtime's threads exist.
//! Keeping the address also lets abstract-namespace sockets (`@name`) work,
//! which the crate's path-only `connect` does not reach.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub use sd_notify::NotifyState;

/// The environment variable the service manager sets for `Type=notify`.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where to send notifications: the service manager's datagram socket.
#[derive(Debug)]
pub struct Notifier {
    addr: SocketAddr,
    /// The variable's text, for log messages.
    shown: String,
}

impl Notifier {
    /// The notifier for the socket `NOTIFY_SOCKET` names (a path, or `@name`
    /// for the abstract namespace); `None` when the value is empty or not a
    /// usable address.
    pub fn new(value: &OsString) -> Option<Notifier> {
        let bytes = value.as_bytes();
        let addr = match bytes.split_first() {
            None => return None,
            Some((b'@', name)) => SocketAddr::from_abstract_name(name),
            Some(_) => SocketAddr::from_pathname(std::path::Path::new(value)),
        }
        .ok()?;
        Some(Notifier {
            addr,
            shown: value.to_string_lossy().into_owned(),
        })
    }

    /// Takes `NOTIFY_SOCKET` out of the environment (whether or not it is
    /// used: it belongs to this process alone, never to its children) and
    /// returns its notifier.
    ///
    /// # Safety
    ///
    /// Only while the process is single-threaded, like any change to the
    /// environment ([`std::env::remove_var`]).
    pub unsafe fn take_from_env() -> Option<Notifier> {
        let value = std::env::var_os(NOTIFY_SOCKET)?;
        // SAFETY: the caller guarantees that no other thread exists.
        unsafe { std::env::remove_var(NOTIFY_SOCKET) };
        let notifier = Notifier::new(&value);
        if notifier.is_none() {
            tracing::warn!("{NOTIFY_SOCKET}={value:?} is not a socket address; not notifying");
        }
        notifier
    }

    /// Sends one datagram with `states`, one `KEY=VALUE` line each, as
    /// `sd_notify` does. Newlines in a value would start a new assignment,
    /// so they are replaced by spaces.
    pub fn send(&self, states: &[NotifyState]) -> io::Result<()> {
        let mut msg = String::new();
        for s in states {
            msg.push_str(&s.to_string().replace('\n', " "));
            msg.push('\n');
        }
        let sock = UnixDatagram::unbound()?;
        let sent = sock.send_to_addr(msg.as_bytes(), &self.addr)?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification truncated",
            ));
        }
        Ok(())
    }

    /// [`Notifier::send`], with a failure logged: a service manager that
    /// went away must not stop the daemon.
    pub fn send_logged(&self, states: &[NotifyState]) {
        if let Err(e) = self.send(states) {
            tracing::warn!("cannot notify the service manager at {}: {e}", self.shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_socket_path() {
        let dir = std::env::temp_dir().join(format!("notify-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(&path.clone().into_os_string()).unwrap();
        n.send(&[NotifyState::Ready, NotifyState::Status("serving")])
            .unwrap();
        assert_eq!(receive(&sock), "READY=1\nSTATUS=serving\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sends_to_an_abstract_socket_and_keeps_one_line_per_state() {
        let name = format!("failover-notify-test-{}", std::process::id());
        let sock =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::new(&format!("@{name}").into()).unwrap();
        n.send(&[
            NotifyState::Status("line one\nline two"),
            NotifyState::Stopping,
        ])
        .unwrap();
        assert_eq!(receive(&sock), "STATUS=line one line two\nSTOPPING=1\n");
    }

    #[test]
    fn an_empty_value_means_no_notifier_and_a_missing_socket_is_an_error() {
        assert!(Notifier::new(&OsString::new()).is_none());
        let n = Notifier::new(&"/nonexistent/failover/notify.sock".into()).unwrap();
        assert!(n.send(&[NotifyState::Ready]).is_err());
    }
}
