//! Whether a TCP peer reads what failsh sends it, told by the receive window
//! it advertises.
//!
//! A monitor client that never reads does not make failsh's writes wait for
//! minutes: its kernel's receive buffer and failsh's send buffer take
//! snapshot after snapshot. But the peer's advertised window (Linux
//! `TCP_INFO`, `tcpi_snd_wnd`) shrinks by what it holds unread: a reader's
//! stays at its widest, a non-reader's falls with every push. A client
//! whose window has fallen by more than the last push (plus the window's
//! granularity, twice) is behind — seen within a few pushes, long before
//! any write would block. On a kernel without the field nobody is ever seen
//! behind this way; the write deadline still applies.

use std::os::fd::{AsFd, AsRawFd};

/// One connection's widest advertised window so far.
#[derive(Debug, Default)]
pub struct Window {
    widest: u32,
}

/// What the kernel says about the peer's receive window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    /// The window, in bytes.
    pub bytes: u32,
    /// Its granularity (1 << window scale), in bytes.
    pub grain: u32,
}

impl Window {
    /// Whether the peer holds more than `last_push` bytes unread, by `now`,
    /// what its window is now.
    pub fn behind(&mut self, now: Advertised, last_push: usize) -> bool {
        self.widest = self.widest.max(now.bytes);
        let unread = u64::from(self.widest - now.bytes);
        unread > last_push as u64 + 2 * u64::from(now.grain)
    }
}

/// The peer's advertised receive window, if the kernel reports it.
pub fn advertised(socket: &impl AsFd) -> Option<Advertised> {
    // SAFETY: tcp_info is plain integers, so all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and the kernel writes at
    // most `len` bytes and sets `len` to how many it wrote.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    let reported = std::mem::offset_of!(libc::tcp_info, tcpi_snd_wnd) + 4;
    if rc != 0 || (len as usize) < reported {
        return None;
    }
    // The byte holds the peer's and our window scale, 4 bits each (which
    // half is whose depends on the bit-field order): take the coarser.
    let scales = info.tcpi_snd_rcv_wscale;
    let scale = (scales & 0x0f).max(scales >> 4);
    Some(Advertised {
        bytes: info.tcpi_snd_wnd,
        grain: 1 << scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    fn at(bytes: u32) -> Advertised {
        Advertised { bytes, grain: 128 }
    }

    #[test]
    fn behind_once_the_window_fell_by_more_than_the_last_push() {
        let mut w = Window::default();
        assert!(!w.behind(at(80_000), 1000));
        // The last push, not read yet, plus rounding: not behind.
        assert!(!w.behind(at(78_800), 1000));
        // More than that: behind; read again: not.
        assert!(w.behind(at(78_000), 1000));
        assert!(!w.behind(at(80_000), 1000));
        // The window grows for a reader: the widest counts.
        assert!(!w.behind(at(120_000), 1000));
        assert!(w.behind(at(80_000), 1000));
    }

    /// On the real kernel: a peer that reads stays caught up, one that
    /// does not is seen behind after a few pushes.
    #[test]
    fn a_peer_that_does_not_read_is_seen_behind() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut reader = TcpStream::connect(addr).unwrap();
        let (mut to_reader, _) = listener.accept().unwrap();
        let _idle = TcpStream::connect(addr).unwrap();
        let (mut to_idle, _) = listener.accept().unwrap();
        if advertised(&to_idle).is_none() {
            eprintln!("this kernel does not report the peer's window: nothing to test");
            return;
        }
        let push = vec![b'x'; 1500];
        let (mut rw, mut iw) = (Window::default(), Window::default());
        let mut got = vec![0u8; push.len()];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pushes = 0;
        loop {
            to_reader.write_all(&push).unwrap();
            reader.read_exact(&mut got).unwrap();
            to_idle.write_all(&push).unwrap();
            pushes += 1;
            assert!(!rw.behind(advertised(&to_reader).unwrap(), push.len()));
            if iw.behind(advertised(&to_idle).unwrap(), push.len()) {
                break;
            }
            assert!(Instant::now() < deadline, "not seen behind");
        }
        println!("a peer that does not read is seen behind after {pushes} pushes of 1500 bytes");
        assert!(pushes <= 10, "{pushes} pushes");
    }
}
