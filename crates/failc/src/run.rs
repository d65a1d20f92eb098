//! One invocation: the requests an action takes, and what their replies
//! mean for output and exit status.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use failover::proto::{ErrorCode, Item, MAX_GET_NAMES, Op, Reply, Status, get_batches};

use crate::cli::Action;
use crate::client::{Client, Target};
use crate::error::Error;
use crate::exit;
use crate::output::Entry;

/// The records to print and the problems met on the way.
#[derive(Debug, Default)]
pub struct Outcome {
    pub entries: Vec<Entry>,
    /// SETs that created a service, each most likely a mistyped name.
    pub warnings: Vec<String>,
    pub failures: Vec<Error>,
}

impl Outcome {
    /// The status of the first failure, as the first is usually the cause.
    pub fn exit_code(&self) -> u8 {
        self.failures.first().map_or(exit::OK, exit::code)
    }

    /// Adds what one reply says: its records, or why there are none.
    fn absorb(&mut self, op: &Op, target: &Target, reply: Reply) {
        let service = match op {
            Op::Set { service, .. } | Op::Delete(service) => Some(service.clone()),
            Op::Get(_) | Op::List => None,
        };
        match reply {
            Reply::Error(e) => self.failures.push(Error::Refused {
                service,
                target: target.clone(),
                code: e.code,
                message: e.message,
            }),
            Reply::Items { status, items, .. } => {
                if let (Status::Created, Some(name)) = (status, &service) {
                    self.warnings.push(format!(
                        "warning: service '{name}' did not exist on {target} and was created (check the name)"
                    ));
                }
                for item in items {
                    match item {
                        Item::Found(name, record) => {
                            if let (Some(req), Some(_)) = (record.request, &service) {
                                self.warnings.push(format!(
                                    "{name}: failsh runs it on {target}: stop requested; failsh stops it, then sets {req}"
                                ));
                            }
                            self.entries.push((name, record));
                        }
                        Item::Missing(name, code) => {
                            self.failures.push(Error::Refused {
                                service: Some(name),
                                target: target.clone(),
                                code,
                                message: String::new(),
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Sends every request the action takes. Goes on after faild refuses one
/// (the other services are still worth doing), but stops at the first
/// transport failure: the next request would only wait out the same timeout.
/// A GET whose reply is too large for one UDP datagram is asked again in two
/// halves.
pub fn run(client: &mut Client, action: &Action, community: &str) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending: VecDeque<Op> = requests(action, community).into();
    while let Some(op) = pending.pop_front() {
        let reply = match client.call(op.clone()) {
            Ok(reply) => reply,
            Err(e) => {
                outcome.failures.push(e.into());
                break;
            }
        };
        match (&op, &reply) {
            (Op::Get(names), Reply::Error(e)) if e.code == ErrorCode::TooBig && names.len() > 1 => {
                let (first, second) = names.split_at(names.len() / 2);
                pending.push_front(Op::Get(second.to_vec()));
                pending.push_front(Op::Get(first.to_vec()));
            }
            _ => outcome.absorb(&op, client.target(), reply),
        }
    }
    if let Action::Set {
        wait: Some(limit), ..
    } = action
    {
        wait_for_requested_stops(client, *limit, &mut outcome);
    }
    outcome
}

/// `--wait`: polls the services whose stop was requested until failsh has
/// carried it out (no request pending) or `limit` has passed; the records
/// printed are the last ones read.
fn wait_for_requested_stops(client: &mut Client, limit: Duration, outcome: &mut Outcome) {
    let deadline = Instant::now() + limit;
    loop {
        let pending: Vec<String> = outcome
            .entries
            .iter()
            .filter(|(_, r)| r.request.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        if pending.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let target = client.target().clone();
            outcome
                .failures
                .extend(pending.into_iter().map(|service| Error::Pending {
                    service,
                    target: target.clone(),
                    waited: limit,
                }));
            return;
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
        match client.call(Op::Get(pending)) {
            Ok(Reply::Items { items, .. }) => {
                for item in items {
                    if let Item::Found(name, record) = item
                        && let Some(entry) = outcome.entries.iter_mut().find(|(n, _)| *n == name)
                    {
                        entry.1 = record;
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                outcome.failures.push(e.into());
                return;
            }
        }
    }
}

/// One SET or DEL per service; all GETs in one request, unless that would
/// pass faild's limits on names per GET or request length.
fn requests(action: &Action, community: &str) -> Vec<Op> {
    match action {
        Action::List => vec![Op::List],
        Action::Delete(services) => services.iter().cloned().map(Op::Delete).collect(),
        Action::Set {
            state,
            backup,
            origin,
            services,
            ..
        } => services
            .iter()
            .map(|service| Op::Set {
                service: service.clone(),
                state: *state,
                origin: *origin,
                backup: backup.clone(),
            })
            .collect(),
        Action::Get(services) => get_batches(services, community, MAX_GET_NAMES)
            .into_iter()
            .map(Op::Get)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover::proto::Origin;
    use failover::proto::{ErrorCode, MAX_REQUEST, ProtoError, Request};
    use failover::{Record, State};
    use std::time::UNIX_EPOCH;

    fn target() -> Target {
        Target::new("localhost", 1291)
    }

    fn record(state: State) -> Record {
        Record::new(state, None, UNIX_EPOCH, 1)
    }

    fn items(status: Status, items: Vec<Item>) -> Reply {
        Reply::Items {
            id: 1,
            status,
            items,
        }
    }

    fn set(service: &str) -> Op {
        Op::Set {
            service: service.into(),
            state: State::Fail,
            backup: None,
            origin: Origin::Admin,
        }
    }

    fn messages(outcome: &Outcome) -> Vec<String> {
        outcome.failures.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn one_request_per_set_or_delete() {
        let services = vec!["a".to_string(), "b".to_string()];
        let action = Action::Set {
            state: State::Fail,
            backup: Some("macbeth".into()),
            origin: Origin::Admin,
            wait: None,
            services: services.clone(),
        };
        let ops = requests(&action, "public");
        assert_eq!(ops.len(), 2);
        assert_eq!(
            ops[1],
            Op::Set {
                service: "b".into(),
                state: State::Fail,
                backup: Some("macbeth".into()),
                origin: Origin::Admin,
            }
        );
        assert_eq!(
            requests(&Action::Delete(services), "public"),
            vec![Op::Delete("a".into()), Op::Delete("b".into())]
        );
        assert_eq!(requests(&Action::List, "public"), vec![Op::List]);
    }

    #[test]
    fn gets_share_a_request_within_faild_limits() {
        let few: Vec<String> = vec!["vip".into(), "www".into()];
        assert_eq!(
            requests(&Action::Get(few.clone()), "public"),
            vec![Op::Get(few)]
        );

        let many: Vec<String> = (0..MAX_GET_NAMES + 1).map(|i| format!("s{i}")).collect();
        let ops = requests(&Action::Get(many.clone()), "public");
        assert_eq!(ops.len(), 2);

        let long: Vec<String> = (0..100).map(|i| format!("{i:0>128}")).collect();
        let community = "c".repeat(64);
        let ops = requests(&Action::Get(long.clone()), &community);
        assert!(ops.len() > 1);
        let mut names = Vec::new();
        for op in ops {
            let line = Request {
                id: u64::MAX,
                community: community.clone(),
                op: op.clone(),
            }
            .encode();
            assert!(line.len() <= MAX_REQUEST, "{}", line.len());
            let Op::Get(batch) = op else { panic!() };
            assert!(batch.len() <= MAX_GET_NAMES);
            names.extend(batch);
        }
        assert_eq!(names, long);
    }

    #[test]
    fn get_prints_found_and_reports_missing() {
        let mut out = Outcome::default();
        let reply = items(
            Status::Ok,
            vec![
                Item::Missing("gone".into(), ErrorCode::NoSuch),
                Item::Found("vip".into(), record(State::Up)),
                Item::Missing("secret".into(), ErrorCode::Denied),
            ],
        );
        out.absorb(&Op::Get(vec![]), &target(), reply);
        assert_eq!(out.entries, vec![("vip".to_string(), record(State::Up))]);
        assert_eq!(
            messages(&out),
            [
                "gone: no such service on localhost:1291",
                "secret: denied on localhost:1291"
            ]
        );
        assert_eq!(out.exit_code(), exit::NO_SUCH);
    }

    #[test]
    fn created_service_is_a_warning_not_a_failure() {
        let mut out = Outcome::default();
        let reply = items(
            Status::Created,
            vec![Item::Found("vpi".into(), record(State::Fail))],
        );
        out.absorb(&set("vpi"), &target(), reply);
        assert_eq!(out.entries.len(), 1);
        assert_eq!(
            out.warnings,
            [
                "warning: service 'vpi' did not exist on localhost:1291 and was created (check the name)"
            ]
        );
        assert_eq!(out.exit_code(), exit::OK);
    }

    #[test]
    fn first_failure_decides_the_status() {
        let mut out = Outcome::default();
        let denied = Reply::Error(ProtoError::new(
            Some(1),
            ErrorCode::Denied,
            "community may not write",
        ));
        out.absorb(&set("a"), &target(), denied);
        out.absorb(
            &set("b"),
            &target(),
            items(
                Status::Ok,
                vec![Item::Found("b".into(), record(State::Fail))],
            ),
        );
        out.absorb(
            &Op::Delete("c".into()),
            &target(),
            Reply::Error(ProtoError::new(Some(3), ErrorCode::NoSuch, "")),
        );
        assert_eq!(out.entries.len(), 1);
        assert_eq!(
            messages(&out),
            [
                "denied: community may not write",
                "c: no such service on localhost:1291"
            ]
        );
        assert_eq!(out.exit_code(), exit::DENIED);
    }

    #[test]
    fn udp_list_too_big_passes_faild_advice_on() {
        let mut out = Outcome::default();
        let msg = "reply too large for UDP; use TCP";
        out.absorb(
            &Op::List,
            &target(),
            Reply::Error(ProtoError::new(Some(1), ErrorCode::TooBig, msg)),
        );
        assert_eq!(messages(&out), [format!("too big: {msg}")]);
        assert_eq!(out.exit_code(), exit::FAILURE);
    }
}
