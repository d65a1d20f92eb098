//! The `failsvc` and `failhost` functions the config script calls.
//!
//! Arguments are checked at the call, so an error points at the config line
//! that caused it. Tables are read with raw accesses only: no metamethod can
//! run Lua code (and call back in) while the draft is locked.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use failover::names::{check_community, check_name};
use mlua::{Function, MultiValue, Table, Value};

use super::draft::{Draft, HookRef, ServiceDraft};
use super::{HostConfig, LOCALHOST, Protocol};
use crate::hooks::text::excerpt;
use crate::hooks::{Engine, HookKind};

/// Shortest interval, timeout or hook time limit accepted: a zero-length
/// timer would spin.
const MIN_SECONDS: f64 = 0.001;
/// Longest interval, timeout or hook time limit accepted (one day).
const MAX_SECONDS: f64 = 86_400.0;

/// Longest string setting accepted (a file path may be 4096 bytes): checked
/// before the string is copied out of Lua, so a config cannot make failsh
/// hold many copies of one huge Lua string (see [`crate::hooks::text`]).
const MAX_STRING: usize = 4096;
/// Longest text a number, key or shown value is read from.
const SHORT: usize = 64;

type Handler = fn(&mut Draft, &str, Vec<Value>) -> Result<(), String>;

const FUNCTIONS: [(&str, Handler); 2] = [("failsvc", failsvc), ("failhost", failhost)];

/// Defines `failsvc` and `failhost`, which fill `draft`.
pub(super) fn install(engine: &Engine, draft: &Arc<Mutex<Draft>>) -> mlua::Result<()> {
    for (name, handler) in FUNCTIONS {
        let draft = Arc::clone(draft);
        let locator = engine.locator.clone();
        let function = engine.lua.create_function(move |lua, args: MultiValue| {
            let at = locator.caller(lua);
            let mut draft = draft.lock().unwrap_or_else(PoisonError::into_inner);
            handler(&mut draft, &at, args.into_iter().collect())
                .map_err(|message| mlua::Error::runtime(format!("{at}: {name}: {message}")))
        })?;
        engine.lua.globals().raw_set(name, function)?;
    }
    Ok(())
}

/// Removes `failsvc` and `failhost` once the script has run: a hook calling
/// them would change nothing.
pub(super) fn uninstall(engine: &Engine) -> mlua::Result<()> {
    for (name, _) in FUNCTIONS {
        engine.lua.globals().raw_set(name, Value::Nil)?;
    }
    Ok(())
}

/// A service setting: its `failsvc` subcommand, its table key, and what it
/// sets.
const SERVICE_KEYS: [(&str, &str, ServiceKey); 9] = [
    ("interval", "interval", ServiceKey::Interval),
    ("timeout", "timeout", ServiceKey::Timeout),
    ("hooktimeout", "hook_timeout", ServiceKey::HookTimeout),
    ("masters", "masters", ServiceKey::Masters),
    ("slaves", "slaves", ServiceKey::Slaves),
    ("start", "start", ServiceKey::Hook(HookKind::Start)),
    ("stop", "stop", ServiceKey::Hook(HookKind::Stop)),
    ("reclaim", "reclaim", ServiceKey::Hook(HookKind::Reclaim)),
    ("check", "check", ServiceKey::Hook(HookKind::Check)),
];

#[derive(Clone, Copy)]
enum ServiceKey {
    Interval,
    Timeout,
    HookTimeout,
    Masters,
    Slaves,
    Hook(HookKind),
}

fn failsvc(draft: &mut Draft, at: &str, args: Vec<Value>) -> Result<(), String> {
    match args.as_slice() {
        [Value::Table(table)] => failsvc_table(draft, at, table),
        [name, subcommand, values @ ..] => {
            let name = service_name(name)?;
            let subcommand = string(subcommand, "the subcommand")?;
            if subcommand == "create" {
                if !values.is_empty() {
                    return Err("create takes no values".into());
                }
                return create(draft, at, name).map(drop);
            }
            let Some(&(_, _, key)) = SERVICE_KEYS.iter().find(|k| k.0 == subcommand) else {
                let known: Vec<_> = SERVICE_KEYS.iter().map(|k| k.0).collect();
                return Err(format!(
                    "unknown subcommand {subcommand:?} (known: create, {})",
                    known.join(", ")
                ));
            };
            let service = draft.services.get_mut(&name).ok_or_else(|| {
                format!("service {name:?} not created yet (failsvc({name:?}, \"create\") first)")
            })?;
            apply(service, key, &subcommand, values, at)
        }
        _ => Err(
            "expected failsvc(SERVICE, SUBCOMMAND, ...) or failsvc{ name = SERVICE, ... }".into(),
        ),
    }
}

fn failsvc_table(draft: &mut Draft, at: &str, table: &Table) -> Result<(), String> {
    let known: Vec<_> = ["name"]
        .into_iter()
        .chain(SERVICE_KEYS.iter().map(|k| k.1))
        .collect();
    check_keys(table, &known)?;
    let name = service_name(&field(table, "name")?)?;
    let service = create(draft, at, name)?;
    for (_, key_name, key) in SERVICE_KEYS {
        let value = field(table, key_name)?;
        if !value.is_nil() {
            apply(service, key, key_name, &[value], at)?;
        }
    }
    Ok(())
}

fn create<'d>(
    draft: &'d mut Draft,
    at: &str,
    name: String,
) -> Result<&'d mut ServiceDraft, String> {
    if let Some(old) = draft.services.get(&name) {
        return Err(format!("service {name:?} already created at {}", old.at));
    }
    let seq = draft.services.len();
    Ok(draft
        .services
        .entry(name)
        .or_insert_with(|| ServiceDraft::new(at.to_string(), seq)))
}

/// Sets one service setting; `what` names it in messages.
fn apply(
    service: &mut ServiceDraft,
    key: ServiceKey,
    what: &str,
    values: &[Value],
    at: &str,
) -> Result<(), String> {
    match key {
        ServiceKey::Interval => service.interval = Some(seconds(one(values, what)?, what)?),
        ServiceKey::Timeout => {
            service.timeout = Some((seconds(one(values, what)?, what)?, at.to_string()));
        }
        ServiceKey::HookTimeout => service.hook_timeout = Some(seconds(one(values, what)?, what)?),
        ServiceKey::Masters => {
            service.masters = host_list(values)?;
            service.masters_at = at.to_string();
        }
        ServiceKey::Slaves => {
            service.slaves = host_list(values)?;
            service.slaves_at = at.to_string();
        }
        ServiceKey::Hook(kind) => {
            let hook = match one(values, what)? {
                Value::Function(f) => HookRef::Function(Function::clone(f)),
                Value::String(_) => HookRef::Global {
                    name: string(one(values, what)?, what)?,
                    at: at.to_string(),
                },
                other => {
                    return Err(format!(
                        "{what} takes a function or the name of a global function, got {}",
                        other.type_name()
                    ));
                }
            };
            service.hooks[kind as usize] = Some(hook);
        }
    }
    Ok(())
}

/// A host setting: its `failhost` subcommand and table key.
const HOST_KEYS: [&str; 6] = [
    "address",
    "port",
    "protocol",
    "community",
    "key_file",
    "key_id",
];

fn failhost(draft: &mut Draft, at: &str, args: Vec<Value>) -> Result<(), String> {
    match args.as_slice() {
        [Value::Table(table)] => {
            let known: Vec<_> = ["name"].into_iter().chain(HOST_KEYS).collect();
            check_keys(table, &known)?;
            let host = host(draft, &field(table, "name")?, at)?;
            for key in HOST_KEYS {
                let value = field(table, key)?;
                if !value.is_nil() {
                    apply_host(draft, &host, key, &value, at)?;
                }
            }
            Ok(())
        }
        [name, key, value] => {
            let key = string(key, "the subcommand")?;
            if !HOST_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown subcommand {key:?} (known: {})",
                    HOST_KEYS.join(", ")
                ));
            }
            let host = host(draft, name, at)?;
            apply_host(draft, &host, &key, value, at)
        }
        _ => {
            Err("expected failhost(HOST, SUBCOMMAND, VALUE) or failhost{ name = HOST, ... }".into())
        }
    }
}

/// The name of the host a `failhost` call at `at` configures, which it
/// declares if new.
fn host(draft: &mut Draft, name: &Value, at: &str) -> Result<String, String> {
    let name = string(name, "the host name")?;
    check_name("host name", &name)?;
    draft
        .hosts
        .entry(name.clone())
        .or_insert_with_key(|name| HostConfig::implicit(name));
    draft
        .failhost_at
        .entry(name.clone())
        .or_insert_with(|| at.to_string());
    Ok(name)
}

fn apply_host(
    draft: &mut Draft,
    name: &str,
    key: &str,
    value: &Value,
    at: &str,
) -> Result<(), String> {
    let host = draft.hosts.get_mut(name).expect("declared by host()");
    match key {
        "address" => {
            let address = string(value, "address")?;
            if address.is_empty() || address.len() > 255 {
                return Err("address must be 1 to 255 bytes".into());
            }
            if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "address {address:?} contains a space or control character"
                ));
            }
            host.address = address;
            draft.address_at.insert(name.to_string(), at.to_string());
        }
        "port" => host.port = port(value)?,
        "protocol" => host.protocol = Protocol::from_str(&string(value, "protocol")?)?,
        "key_file" => {
            let file = string(value, "key_file")?;
            if file.is_empty() {
                return Err("key_file must not be empty".into());
            }
            host.key_file = Some((file, at.to_string()));
        }
        "key_id" => {
            let id = string(value, "key_id")?;
            failover::auth::check_key_id(&id)?;
            host.key_id = Some(id);
            draft.key_id_at.insert(name.to_string(), at.to_string());
        }
        _ => {
            let community = string(value, "community")?;
            check_community(&community)?;
            host.community = community;
        }
    }
    Ok(())
}

fn port(value: &Value) -> Result<u16, String> {
    let number = match value {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e9 => Some(*n as i64),
        Value::String(s) => excerpt(s, SHORT).trim().parse().ok(),
        _ => None,
    };
    number
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("port must be a number from 1 to 65535, got {}", show(value)))
}

/// Rejects keys other than `known` (and non-string keys) in a table call.
fn check_keys(table: &Table, known: &[&str]) -> Result<(), String> {
    let mut unknown = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| e.to_string())?;
        match &key {
            Value::String(s) if known.contains(&excerpt(s, SHORT).as_str()) => {}
            other => unknown.push(show(other)),
        }
    }
    unknown.sort();
    match unknown.first() {
        None => Ok(()),
        Some(key) => Err(format!("unknown key {key} (known: {})", known.join(", "))),
    }
}

fn field(table: &Table, key: &str) -> Result<Value, String> {
    table.raw_get(key).map_err(|e| e.to_string())
}

fn service_name(value: &Value) -> Result<String, String> {
    let name = string(value, "the service name")?;
    check_name("service name", &name)?;
    Ok(name)
}

/// Host names from strings and lists of strings; order kept, duplicates
/// dropped.
fn host_list(values: &[Value]) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for value in values {
        let items = match value {
            Value::Table(list) => (1..=list.raw_len())
                .map(|i| list.raw_get(i).map_err(|e| e.to_string()))
                .collect::<Result<Vec<Value>, _>>()?,
            other => vec![other.clone()],
        };
        for item in &items {
            let name = string(item, "a host name")?;
            check_name("host name", &name)?;
            if name == LOCALHOST {
                return Err(format!(
                    "{LOCALHOST} names the local faild; it cannot be a master or slave"
                ));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

fn one<'v>(values: &'v [Value], what: &str) -> Result<&'v Value, String> {
    match values {
        [value] => Ok(value),
        _ => Err(format!("{what} takes one value, got {}", values.len())),
    }
}

/// A number of seconds (fractions allowed) between the limits.
fn seconds(value: &Value, what: &str) -> Result<Duration, String> {
    let secs = match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => excerpt(s, SHORT).trim().parse().ok(),
        _ => None,
    };
    secs.filter(|s| (MIN_SECONDS..=MAX_SECONDS).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!(
                "{what} must be a number of seconds from {MIN_SECONDS} to {MAX_SECONDS}, got {}",
                show(value)
            )
        })
}

fn string(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) if s.as_bytes().len() > MAX_STRING => Err(format!(
            "{what} is {} bytes long; at most {MAX_STRING} allowed",
            s.as_bytes().len()
        )),
        Value::String(s) => s
            .to_str()
            .map(|s| s.to_string())
            .map_err(|_| format!("{what} is not valid UTF-8")),
        other => Err(format!("{what} must be a string, got {}", show(other))),
    }
}

/// A Lua value in a message: strings quoted, numbers and booleans shown,
/// anything else by type.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", excerpt(s, SHORT)),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}
