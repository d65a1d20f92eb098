//! One poller per host: services ask it for their record, and requests that
//! arrive together (services on the same interval tick at the same instant)
//! go out as one GET, so a peer is asked once per tick for all of them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use failover::Record;
use tokio::sync::{mpsc, oneshot};

use crate::client::{CallError, Client};
use crate::config::HostConfig;

/// How long a poller waits for more requests to join a batch.
const GATHER: Duration = Duration::from_millis(2);

/// Least time a call leaves its askers to take in its answer.
const MARGIN: Duration = Duration::from_millis(10);

struct Ask {
    service: String,
    /// When the asker stops waiting.
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Result<Record, CallError>>,
}

/// How calls to one host's faild went (the monitor's host list). Kept by
/// the engine across config reloads.
#[derive(Debug, Clone, Default)]
pub struct HostStats {
    pub last_ok: Option<SystemTime>,
    pub last_failure: Option<SystemTime>,
    pub last_error: Option<String>,
    pub rtt: Option<Duration>,
    pub calls: u64,
    pub failures: u64,
    /// Replies that failed authentication (see [`Client::auth_failures`]).
    pub auth_failures: u64,
}

impl HostStats {
    /// Counts one call: answered (with its round trip) or not.
    fn record(&mut self, outcome: Result<Duration, String>) {
        self.calls += 1;
        match outcome {
            Ok(rtt) => {
                self.last_ok = Some(SystemTime::now());
                self.rtt = Some(rtt);
            }
            Err(e) => {
                self.failures += 1;
                self.last_failure = Some(SystemTime::now());
                self.last_error = Some(e);
            }
        }
    }
}

/// A handle to a host's poller task; the task ends when the last handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct Poller {
    tx: mpsc::UnboundedSender<Ask>,
}

impl Poller {
    /// Starts the poller task for `host`, at the addresses it was found at
    /// when the config was loaded.
    pub fn spawn(
        host: HostConfig,
        addresses: Result<Vec<SocketAddr>, String>,
        stats: Arc<Mutex<HostStats>>,
    ) -> Poller {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Client::new(host, addresses), rx, stats));
        Poller { tx }
    }

    /// This host's record of `service`, or why there is none.
    pub async fn get(&self, service: &str, limit: Duration) -> Result<Record, CallError> {
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + limit;
        let ask = Ask {
            service: service.to_string(),
            deadline,
            reply,
        };
        if self.tx.send(ask).is_err() {
            return Err(CallError::NoAnswer("poller stopped".into()));
        }
        // The ask's own limit holds even while the poller still waits on a
        // slower service's batch to this host.
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::NoAnswer("poller stopped".into())),
            Err(_) => Err(CallError::NoAnswer(format!("no reply within {limit:?}"))),
        }
    }
}

async fn run(
    mut client: Client,
    mut rx: mpsc::UnboundedReceiver<Ask>,
    stats: Arc<Mutex<HostStats>>,
) {
    // Counted on top of what an earlier poller (before a reload) counted.
    let base = stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .auth_failures;
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(GATHER).await;
        let mut asks = vec![first];
        while let Ok(more) = rx.try_recv() {
            asks.push(more);
        }
        asks.retain(|a| !a.reply.is_closed()); // their callers gave up waiting
        if asks.is_empty() {
            continue;
        }
        // The call ends a little before the first asker stops waiting, so
        // that what it got (an error answer, say) reaches the askers rather
        // than their own "no reply".
        let deadline = asks.iter().map(|a| a.deadline).min();
        let left = deadline.map_or(GATHER, |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        });
        // (A short ask — the last look at a long-silent peer — keeps three
        // quarters of its time for the call.)
        let limit = left.saturating_sub((left / 10).max(MARGIN).min(left / 4));
        let mut names: Vec<String> = asks.iter().map(|a| a.service.clone()).collect();
        names.sort();
        names.dedup();
        let sent = Instant::now();
        let mut answers: BTreeMap<String, Result<Record, CallError>> =
            client.get(&names, limit).await.into_iter().collect();
        // Answered unless some name got no (readable, authentic) answer; an
        // error reply (no such service, denied) is an answer.
        let failed = answers.values().find_map(|a| match a {
            Err(
                e @ (CallError::NoAnswer(_)
                | CallError::Garbled(_)
                | CallError::Unresolved(_)
                | CallError::Unauthenticated(_)),
            ) => Some(e.to_string()),
            _ => None,
        });
        {
            let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.record(failed.map_or(Ok(sent.elapsed()), Err));
            stats.auth_failures = base + client.auth_failures;
        }
        for ask in asks {
            let answer = match answers.get(&ask.service) {
                Some(Ok(r)) => Ok(r.clone()),
                Some(Err(e)) => Err(e.clone()),
                None => Err(CallError::Garbled("missing from the reply".into())),
            };
            let _ = ask.reply.send(answer);
        }
        answers.clear();
    }
}

#[cfg(test)]
mod tests {
    //! A fake faild on 127.0.0.1 that answers after 3 ms.

    use super::*;
    use crate::config::Protocol;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// The last look at a long-silent peer is short (10 ms): the call must
    /// still get most of it, or a peer that answers within it is never seen
    /// and counts as FAIL. (Twenty tries, so that a loaded machine missing
    /// a few windows does not fail the test; before the fix the call had
    /// under a millisecond, and missed every one.)
    #[tokio::test]
    async fn a_short_ask_still_gives_the_call_most_of_its_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut s = BufReader::new(s);
                    let mut line = String::new();
                    while s.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                        let id = line.split(' ').nth(1).unwrap_or("0").to_string();
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        let reply = format!("FAIL/1 {id} ERR DENIED not for you\n");
                        if s.get_mut().write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        });
        let host = HostConfig {
            name: "peer".into(),
            address: "127.0.0.1".into(),
            port: addr.port(),
            protocol: Protocol::Tcp,
            community: "public".into(),
            key_file: None,
            key_id: None,
            key: None,
        };
        let poller = Poller::spawn(host, Ok(vec![addr]), Arc::default());
        let mut answered = 0;
        for _ in 0..20 {
            let got = poller.get("vip", failover::look::LAST_LOOK).await;
            answered += usize::from(matches!(got, Err(CallError::Refused(_))));
        }
        assert!(
            answered > 0,
            "no ask of {:?} got its answer",
            failover::look::LAST_LOOK
        );
    }
}
