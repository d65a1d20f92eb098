//! `docs/lua/failsh.d.lua`, the lua-language-server annotations of the
//! failsh configuration API, declares everything failsh offers. The lists
//! come from failsh itself (its globals, and the subcommands and keys its
//! error messages name), so a new subcommand or helper fails this test
//! until the annotations have it.

use std::path::PathBuf;

use failsh::config;

fn annotations() -> (PathBuf, String) {
    let path = failover_man::docs_dir().join("../lua/failsh.d.lua");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// The error failsh reports for a config made of `body`.
fn config_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probe.lua");
    std::fs::write(&file, body).unwrap();
    match config::load(&file) {
        Ok(_) => panic!("{body:?} loaded without error"),
        Err(e) => e.0,
    }
}

/// The names listed in a message's `(known: a, b, c)`.
fn known(message: &str) -> Vec<String> {
    let list = message
        .split_once("(known: ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .unwrap_or_else(|| panic!("no (known: ...) in {message:?}"))
        .0;
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn the_annotations_are_valid_lua_that_declares_nothing() {
    let (path, _) = annotations();
    let (config, _hooks) = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.services.is_empty());
}

#[test]
fn every_global_function_failsh_adds_is_declared() {
    // Lua 5.4's base functions; anything else of type function is failsh's.
    const BASE: &[&str] = &[
        "assert",
        "collectgarbage",
        "dofile",
        "error",
        "getmetatable",
        "ipairs",
        "load",
        "loadfile",
        "next",
        "pairs",
        "pcall",
        "print",
        "rawequal",
        "rawget",
        "rawlen",
        "rawset",
        "select",
        "setmetatable",
        "tonumber",
        "tostring",
        "type",
        "xpcall",
        "warn",
    ];
    let message = config_error(
        "local names = {}\n\
         for name, value in pairs(_G) do\n\
           if type(value) == 'function' then names[#names + 1] = name end\n\
         end\n\
         table.sort(names)\n\
         error('globals: ' .. table.concat(names, ' '), 0)\n",
    );
    let globals = message.split_once("globals: ").expect(&message).1;
    let ours: Vec<&str> = globals
        .split(' ')
        .filter(|name| !BASE.contains(name))
        .collect();
    assert!(
        ours.contains(&"failsvc") && ours.contains(&"exec"),
        "{ours:?}"
    );
    let (_, text) = annotations();
    for name in ours {
        assert!(
            text.contains(&format!("\nfunction {name}(")),
            "failsh.d.lua does not declare {name}()"
        );
    }
}

#[test]
fn every_subcommand_and_table_key_is_declared() {
    let (_, text) = annotations();
    let cases = [
        ("failsvc('vip', 'no-such-subcommand')", false),
        ("failsvc{ name = 'vip', no_such_key = 1 }", true),
        ("failhost('macbeth', 'no-such-subcommand', 1)", false),
        ("failhost{ name = 'macbeth', no_such_key = 1 }", true),
    ];
    for (call, table_form) in cases {
        let names = known(&config_error(call));
        assert!(names.len() >= 4, "{call}: {names:?}");
        for name in names {
            let declared = if table_form {
                text.contains(&format!("---@field {name} "))
                    || text.contains(&format!("---@field {name}? "))
            } else {
                text.contains(&format!("\"{name}\""))
            };
            assert!(declared, "{call}: failsh.d.lua does not declare {name:?}");
        }
    }
}
