//! The registry faild keeps: the services, their records, and how a request
//! reads or changes them.
//!
//! Changes are two-phase so that faild can make them durable before anyone
//! sees them: [`Registry::execute`] answers reads at once and turns writes into
//! a [`Mutation`]; faild writes the state file with the mutation applied, and
//! only then calls [`Registry::apply`] and sends [`Mutation::reply`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::community::{Access, Grants};
use crate::proto::{ErrorCode, Item, Op, Origin, Reply, Request, Status};
use crate::record::next_change;
use crate::{Record, State};

/// All services of one faild. Ordered maps keep listings and the state file
/// sorted and every iteration deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    records: BTreeMap<String, Record>,
    /// Last change counter of each deleted service, so a re-created service
    /// continues counting instead of starting again at 1.
    retired: BTreeMap<String, u64>,
}

/// A change that has been decided but not yet made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Set {
        name: String,
        record: Record,
        previous: Option<Record>,
        /// How the reply describes the change.
        status: Status,
    },
    Delete {
        name: String,
        previous: Record,
    },
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this reply; nothing changes.
    Reply(Reply),
    /// Make this change durable, apply it, then send [`Mutation::reply`].
    Change {
        mutation: Mutation,
        /// The origin of the rule that allowed it (`file:line`), for the audit log.
        rule: String,
    },
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Builds a registry from loaded records and tombstones.
    pub fn from_parts(records: BTreeMap<String, Record>, retired: BTreeMap<String, u64>) -> Self {
        Registry { records, retired }
    }

    pub fn get(&self, name: &str) -> Option<&Record> {
        self.records.get(name)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> impl Iterator<Item = (&String, &Record)> {
        self.records.iter()
    }

    pub fn retired(&self) -> impl Iterator<Item = (&String, &u64)> {
        self.retired.iter()
    }

    /// Answers a read, or decides a write.
    pub fn execute(&self, req: &Request, grants: &Grants<'_>, now: SystemTime) -> Outcome {
        let id = req.id;
        let denied = |msg: String| Outcome::Reply(Reply::error(Some(id), ErrorCode::Denied, msg));
        if grants.is_empty() {
            return denied("community not accepted from this address".into());
        }
        let ok = |items| {
            Outcome::Reply(Reply::Items {
                id,
                status: Status::Ok,
                items,
            })
        };
        match &req.op {
            Op::Get(names) => ok(names
                .iter()
                .map(
                    |n| match (grants.allows(n, Access::Read), self.records.get(n)) {
                        (None, _) => Item::Missing(n.clone(), ErrorCode::Denied),
                        (Some(_), None) => Item::Missing(n.clone(), ErrorCode::NoSuch),
                        (Some(_), Some(r)) => Item::Found(n.clone(), r.clone()),
                    },
                )
                .collect()),
            Op::List => ok(self
                .records
                .iter()
                .filter(|(n, _)| grants.allows(n, Access::Read).is_some())
                .map(|(n, r)| Item::Found(n.clone(), r.clone()))
                .collect()),
            Op::Set {
                service,
                state,
                backup,
                origin,
            } => {
                let Some(rule) = grants.allows(service, Access::Write) else {
                    return denied(format!("community may not write {service}"));
                };
                // failsh's conditional writes: a claim only on the RECOVER it
                // decided on, an adoption only on the UP it found. If an
                // admin wrote in between (FAIL, RECOVER, UP by hand), the
                // write is refused and failsh decides again.
                let needed = match origin {
                    Origin::Claim => Some(State::Recover),
                    Origin::Adopt => Some(State::Up),
                    _ => None,
                };
                if let Some(needed) = needed
                    && self.records.get(service).is_none_or(|r| r.state != needed)
                {
                    return Outcome::Reply(Reply::error(
                        Some(id),
                        ErrorCode::Busy,
                        format!("{service} is not {needed} here any more"),
                    ));
                }
                match self.plan_set(service, *state, backup.as_deref(), *origin, now) {
                    Some(mutation) => Outcome::Change {
                        mutation,
                        rule: rule.origin.clone(),
                    },
                    None => ok(vec![Item::Found(
                        service.clone(),
                        self.records[service].clone(),
                    )]),
                }
            }
            Op::Delete(service) => {
                let Some(rule) = grants.allows(service, Access::Write) else {
                    return denied(format!("community may not write {service}"));
                };
                match self.records.get(service) {
                    None => Outcome::Reply(Reply::error(
                        Some(id),
                        ErrorCode::NoSuch,
                        format!("no such service {service}"),
                    )),
                    // Deleting it would make peers see it free (no such
                    // service counts as FAIL) while it runs.
                    Some(r) if r.state == State::Up && r.by_failsh => Outcome::Reply(Reply::error(
                        Some(id),
                        ErrorCode::Busy,
                        format!("failsh runs {service}: stop it first (failc -s FAIL --wait)"),
                    )),
                    Some(previous) => Outcome::Change {
                        mutation: Mutation::Delete {
                            name: service.clone(),
                            previous: previous.clone(),
                        },
                        rule: rule.origin.clone(),
                    },
                }
            }
        }
    }

    /// The change a SET makes, or `None` when it would change nothing.
    ///
    /// An admin's RECOVER or FAIL of a service that failsh runs (UP, last
    /// set by failsh) does not change the state: it becomes a stop request,
    /// which failsh carries out and then publishes. Peers so never see the
    /// service free while it still runs. An admin's UP cancels a pending
    /// request. `force=yes` writes as asked.
    fn plan_set(
        &self,
        name: &str,
        state: State,
        backup: Option<&str>,
        origin: Origin,
        now: SystemTime,
    ) -> Option<Mutation> {
        let previous = self.records.get(name).cloned();
        let Some(old) = &previous else {
            let mut record = Record::new(
                state,
                backup.map(str::to_string),
                now,
                next_change(self.retired.get(name).copied().unwrap_or(0)),
            );
            record.by_failsh =
                matches!(origin, Origin::Failsh | Origin::Claim) && state == State::Up;
            return Some(Mutation::Set {
                name: name.to_string(),
                record,
                previous,
                status: Status::Created,
            });
        };
        let mut new = old.clone();
        if let Some(b) = backup {
            new.backup = Some(b.to_string());
        }
        let mut status = Status::Ok;
        match origin {
            Origin::Admin if old.by_failsh && old.state == State::Up => {
                new.request = (state != State::Up).then_some(state);
                if new.request.is_some() {
                    status = Status::Requested;
                }
            }
            Origin::Failsh | Origin::Claim | Origin::Adopt => {
                new.state = state;
                new.by_failsh = state == State::Up;
                if state != State::Up {
                    new.request = None; // the stop asked for is done
                }
            }
            Origin::Admin | Origin::Forced => {
                new.state = state;
                new.by_failsh = false;
                new.request = None;
            }
        }
        // An adoption always counts: failsh (re)starts or takes over the
        // service here, and peers comparing change counters must see it.
        if new == *old && origin != Origin::Adopt {
            return None;
        }
        if new.state != old.state {
            new.since = now;
        }
        new.changes = next_change(old.changes);
        Some(Mutation::Set {
            name: name.to_string(),
            record: new,
            previous,
            status,
        })
    }

    /// Makes a decided change.
    pub fn apply(&mut self, mutation: &Mutation) {
        match mutation {
            Mutation::Set { name, record, .. } => {
                self.retired.remove(name);
                self.records.insert(name.clone(), record.clone());
            }
            Mutation::Delete { name, previous } => {
                self.records.remove(name);
                self.retired.insert(name.clone(), previous.changes);
            }
        }
    }

    /// Applies the boot-id rule after a reboot: a service recorded UP cannot
    /// still be running, so it becomes FAIL. Returns the names changed.
    pub fn fail_up_services(&mut self, now: SystemTime) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, r) in self
            .records
            .iter_mut()
            .filter(|(_, r)| r.state == State::Up)
        {
            r.state = State::Fail;
            r.since = now;
            r.changes = next_change(r.changes);
            changed.push(name.clone());
        }
        changed
    }
}

impl Mutation {
    pub fn name(&self) -> &str {
        match self {
            Mutation::Set { name, .. } | Mutation::Delete { name, .. } => name,
        }
    }

    /// State before the change (`None`: the service did not exist).
    pub fn old_state(&self) -> Option<State> {
        match self {
            Mutation::Set { previous, .. } => previous.as_ref().map(|r| r.state),
            Mutation::Delete { previous, .. } => Some(previous.state),
        }
    }

    /// State after the change (`None`: the service was deleted).
    pub fn new_state(&self) -> Option<State> {
        match self {
            Mutation::Set { record, .. } => Some(record.state),
            Mutation::Delete { .. } => None,
        }
    }

    /// The reply acknowledging the change: the new record (the last one for a
    /// delete), with status CREATED when a SET made a new service and
    /// REQUESTED when it asked failsh for a stop.
    pub fn reply(&self, id: u64) -> Reply {
        let (status, record) = match self {
            Mutation::Set { record, status, .. } => (*status, record),
            Mutation::Delete { previous, .. } => (Status::Ok, previous),
        };
        Reply::Items {
            id,
            status,
            items: vec![Item::Found(self.name().to_string(), record.clone())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::Rules;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn rules() -> Rules {
        Rules::parse("* public RO\n* genesis RW\nvip ops RW", "c").unwrap()
    }

    fn run(reg: &mut Registry, line: &str, now: SystemTime) -> Reply {
        let req = Request::parse(line.as_bytes()).unwrap();
        let rules = rules();
        let grants = rules.grants(&req.community, "127.0.0.1".parse().unwrap());
        match reg.execute(&req, &grants, now) {
            Outcome::Reply(r) => r,
            Outcome::Change { mutation, .. } => {
                reg.apply(&mutation);
                mutation.reply(req.id)
            }
        }
    }

    fn found(reply: &Reply) -> Vec<(String, State, Option<String>, u64)> {
        let Reply::Items { items, .. } = reply else {
            panic!("{reply:?}")
        };
        items
            .iter()
            .filter_map(|i| match i {
                Item::Found(n, r) => Some((n.clone(), r.state, r.backup.clone(), r.changes)),
                Item::Missing(..) => None,
            })
            .collect()
    }

    fn code(reply: &Reply) -> ErrorCode {
        match reply {
            Reply::Error(e) => e.code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_creates_then_updates_keeping_backup() {
        let mut reg = Registry::new();
        let r = run(&mut reg, "FAIL/1 1 genesis SET vip FAIL macbeth", t(0));
        assert!(matches!(
            r,
            Reply::Items {
                status: Status::Created,
                ..
            }
        ));
        let r = run(&mut reg, "FAIL/1 2 genesis SET vip RECOVER", t(5));
        assert!(matches!(
            r,
            Reply::Items {
                status: Status::Ok,
                ..
            }
        ));
        assert_eq!(
            found(&r),
            [("vip".into(), State::Recover, Some("macbeth".into()), 2)]
        );
        assert_eq!(reg.get("vip").unwrap().since, t(5));
        // Same state again: no change, no counter bump.
        let r = run(&mut reg, "FAIL/1 3 genesis SET vip RECOVER macbeth", t(9));
        assert_eq!(found(&r)[0].3, 2);
        assert_eq!(reg.get("vip").unwrap().since, t(5));
        // Backup change alone bumps the counter but not the time of last change.
        run(&mut reg, "FAIL/1 4 genesis SET vip RECOVER lukretia", t(10));
        assert_eq!(reg.get("vip").unwrap().changes, 3);
        assert_eq!(reg.get("vip").unwrap().since, t(5));
    }

    #[test]
    fn counter_survives_delete_and_recreate() {
        let mut reg = Registry::new();
        for (i, st) in ["UP", "FAIL", "UP"].iter().enumerate() {
            run(
                &mut reg,
                &format!("FAIL/1 {i} genesis SET vip {st}"),
                t(i as u64),
            );
        }
        assert_eq!(reg.get("vip").unwrap().changes, 3);
        let r = run(&mut reg, "FAIL/1 9 genesis DEL vip", t(5));
        assert_eq!(found(&r)[0].3, 3);
        assert!(reg.get("vip").is_none());
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 9 genesis DEL vip", t(5))),
            ErrorCode::NoSuch
        );
        run(&mut reg, "FAIL/1 10 genesis SET vip RECOVER", t(6));
        assert_eq!(reg.get("vip").unwrap().changes, 4);
    }

    #[test]
    fn access_rules_apply_per_operation() {
        let mut reg = Registry::new();
        run(&mut reg, "FAIL/1 1 genesis SET vip UP", t(0));
        run(&mut reg, "FAIL/1 1 genesis SET www UP", t(0));
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 2 public SET vip FAIL", t(1))),
            ErrorCode::Denied
        );
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 2 public DEL vip", t(1))),
            ErrorCode::Denied
        );
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 2 wrong GET vip", t(1))),
            ErrorCode::Denied
        );
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 2 wrong LIST", t(1))),
            ErrorCode::Denied
        );
        assert_eq!(reg.get("vip").unwrap().state, State::Up);
        // ops may write vip only, and read only vip.
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 3 ops SET www FAIL", t(1))),
            ErrorCode::Denied
        );
        assert_eq!(
            found(&run(&mut reg, "FAIL/1 3 ops SET vip FAIL", t(1)))[0].1,
            State::Fail
        );
        assert_eq!(found(&run(&mut reg, "FAIL/1 4 ops LIST", t(1))).len(), 1);
        assert_eq!(found(&run(&mut reg, "FAIL/1 4 public LIST", t(1))).len(), 2);
        let Reply::Items { items, .. } = run(&mut reg, "FAIL/1 5 ops GET vip www nope", t(1))
        else {
            panic!()
        };
        assert!(matches!(items[0], Item::Found(..)));
        assert_eq!(items[1], Item::Missing("www".into(), ErrorCode::Denied));
        // Denied, not NoSuch: a community learns nothing about services it can't read.
        assert_eq!(items[2], Item::Missing("nope".into(), ErrorCode::Denied));
        let Reply::Items { items, .. } = run(&mut reg, "FAIL/1 6 public GET nope", t(1)) else {
            panic!()
        };
        assert_eq!(items[0], Item::Missing("nope".into(), ErrorCode::NoSuch));
    }

    #[test]
    fn admin_stop_of_a_service_failsh_runs_is_a_request() {
        let mut reg = Registry::new();
        run(&mut reg, "FAIL/1 1 genesis SET vip UP by=failsh", t(0));
        assert!(reg.get("vip").unwrap().by_failsh);
        let r = run(&mut reg, "FAIL/1 2 genesis SET vip FAIL", t(1));
        assert!(
            matches!(
                r,
                Reply::Items {
                    status: Status::Requested,
                    ..
                }
            ),
            "{r:?}"
        );
        let vip = reg.get("vip").unwrap();
        assert_eq!(
            (vip.state, vip.request, vip.changes),
            (State::Up, Some(State::Fail), 2)
        );
        // failsh claiming UP again keeps the request pending.
        run(&mut reg, "FAIL/1 3 genesis SET vip UP by=failsh", t(2));
        assert_eq!(reg.get("vip").unwrap().request, Some(State::Fail));
        // failsh stopped it and publishes the state: the request is done.
        run(&mut reg, "FAIL/1 4 genesis SET vip FAIL by=failsh", t(3));
        let vip = reg.get("vip").unwrap();
        assert_eq!(
            (vip.state, vip.request, vip.by_failsh),
            (State::Fail, None, false)
        );
        // Not run by failsh now: an admin's write is direct.
        run(&mut reg, "FAIL/1 5 genesis SET vip RECOVER", t(4));
        assert_eq!(reg.get("vip").unwrap().state, State::Recover);
    }

    #[test]
    fn a_running_service_cannot_be_deleted_and_only_recover_can_be_claimed() {
        let mut reg = Registry::new();
        run(&mut reg, "FAIL/1 1 genesis SET vip UP by=failsh", t(0));
        assert_eq!(
            code(&run(&mut reg, "FAIL/1 2 genesis DEL vip", t(1))),
            ErrorCode::Busy
        );
        // A claim lands only on RECOVER: not on FAIL (an admin's FAIL came
        // first), not on UP (started by hand meanwhile).
        run(&mut reg, "FAIL/1 3 genesis SET vip FAIL by=failsh", t(2));
        let claim = "FAIL/1 4 genesis SET vip UP by=failsh-claim";
        assert_eq!(code(&run(&mut reg, claim, t(3))), ErrorCode::Busy);
        run(&mut reg, "FAIL/1 5 genesis SET vip UP", t(3));
        assert_eq!(code(&run(&mut reg, claim, t(3))), ErrorCode::Busy);
        assert!(!reg.get("vip").unwrap().by_failsh);
        run(&mut reg, "FAIL/1 6 genesis SET vip RECOVER force=yes", t(4));
        run(&mut reg, claim, t(5));
        let vip = reg.get("vip").unwrap();
        assert_eq!((vip.state, vip.by_failsh), (State::Up, true));
        // An adoption of failsh's own UP (a restarted failsh starting it
        // again) changes nothing but still counts, for the peers.
        let before = reg.get("vip").unwrap().clone();
        run(
            &mut reg,
            "FAIL/1 7 genesis SET vip UP by=failsh-adopt",
            t(6),
        );
        let after = reg.get("vip").unwrap();
        assert_eq!((after.state, after.since), (before.state, before.since));
        assert_eq!(after.changes, before.changes + 1);
        run(&mut reg, "FAIL/1 8 genesis SET vip FAIL by=failsh", t(6));
        run(&mut reg, "FAIL/1 9 genesis DEL vip", t(7));
        assert!(reg.get("vip").is_none());
    }

    #[test]
    fn admin_up_cancels_and_force_writes() {
        let mut reg = Registry::new();
        run(&mut reg, "FAIL/1 1 genesis SET vip UP by=failsh", t(0));
        run(&mut reg, "FAIL/1 2 genesis SET vip RECOVER", t(1));
        run(&mut reg, "FAIL/1 3 genesis SET vip UP", t(2));
        let vip = reg.get("vip").unwrap();
        assert_eq!(
            (vip.state, vip.request, vip.by_failsh),
            (State::Up, None, true)
        );
        run(&mut reg, "FAIL/1 4 genesis SET vip FAIL force=yes", t(3));
        let vip = reg.get("vip").unwrap();
        assert_eq!(
            (vip.state, vip.request, vip.by_failsh),
            (State::Fail, None, false)
        );
        // An admin's UP of a service failsh does not run is written (failsh
        // adopts it as running).
        run(&mut reg, "FAIL/1 5 genesis SET vip UP", t(4));
        let vip = reg.get("vip").unwrap();
        assert_eq!((vip.state, vip.by_failsh), (State::Up, false));
    }

    #[test]
    fn reboot_rule_fails_only_up_services() {
        let mut reg = Registry::new();
        run(&mut reg, "FAIL/1 1 genesis SET a UP", t(0));
        run(&mut reg, "FAIL/1 1 genesis SET b RECOVER", t(0));
        assert_eq!(reg.fail_up_services(t(50)), vec!["a".to_string()]);
        let a = reg.get("a").unwrap();
        assert_eq!((a.state, a.changes, a.since), (State::Fail, 2, t(50)));
        assert_eq!(reg.get("b").unwrap().state, State::Recover);
    }
}
