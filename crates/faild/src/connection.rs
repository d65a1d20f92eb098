//! Newline framing of a TCP byte stream, with a hard limit on line length.

use failover::auth::MAX_OVERHEAD;
use failover::proto::MAX_REQUEST;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why no line could be read.
#[derive(Debug)]
pub enum LineError {
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    /// The stream ended in the middle of a line. The line is not executed: a
    /// client killed while sending `SET vip UP macbeth` must not leave
    /// `SET vip UP mac` behind.
    Unterminated,
    Io(std::io::Error),
}

/// Longest line read: a request, and the envelope of a signed one.
const MAX_LINE: usize = MAX_REQUEST + MAX_OVERHEAD;

/// Reads newline-terminated lines, never buffering more than one request.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(512),
            scanned: 0,
        }
    }

    /// The next line without its `\n` (or `\r\n`); `None` at a clean end of
    /// stream (after a complete line).
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + i;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                self.scanned = 0;
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_LINE {
                return Err(LineError::TooLong);
            }
            let n = self.inner.read(&mut chunk).await.map_err(LineError::Io)?;
            if n == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(LineError::Unterminated),
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        loop {
            match r.next_line().await {
                Ok(Some(l)) => out.push(Ok(l)),
                Ok(None) => return out,
                Err(LineError::TooLong) => {
                    out.push(Err("toolong".into()));
                    return out;
                }
                Err(LineError::Unterminated) => {
                    out.push(Err("unterminated".into()));
                    return out;
                }
                Err(LineError::Io(e)) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_never_returns_a_cut_one() {
        let got = lines(b"a\r\nb\n\nSET vip UP mac").await;
        let want: Vec<Result<Vec<u8>, String>> = vec![
            Ok(b"a".to_vec()),
            Ok(b"b".to_vec()),
            Ok(vec![]),
            Err("unterminated".into()),
        ];
        assert_eq!(got, want);
        assert_eq!(lines(b"a\n").await, vec![Ok(b"a".to_vec())]);
    }

    #[tokio::test]
    async fn refuses_an_endless_line() {
        let big = vec![b'x'; MAX_LINE * 3];
        assert_eq!(lines(&big).await, vec![Err("toolong".to_string())]);
        let mut ok = vec![b'x'; MAX_LINE - 1];
        ok.push(b'\n');
        assert_eq!(lines(&ok).await.len(), 1);
        assert!(lines(&ok).await[0].is_ok());
    }
}
