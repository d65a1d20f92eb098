---@meta failsh
-- Type definitions of what a failsh configuration may call, for
-- lua-language-server (LuaLS): editors complete `failsvc`, `failhost`, their
-- subcommands and table keys, and flag wrong types and misspelt keys.
--
-- failsh never loads this file. Point the language server at its directory
-- with a `.luarc.json` beside your configs (docs/failsh.md, "Editor support"):
--
--   { "runtime.version": "Lua 5.4",
--     "workspace.library": ["/path/to/failover/docs/lua"],
--     "runtime.builtin": { "io": "disable", "os": "disable", "coroutine": "disable" } }
--
-- The reference is failsh-config(5) (docs/man/failsh-config.5); what failsh
-- accepts is checked by crates/failsh/src/config/api.rs, and the test
-- crates/man/tests/lua_annotations.rs keeps this file in step with it.
--
-- Besides these, a config has Lua 5.4's base functions and the libraries
-- string, table, math and utf8. Not os, io, coroutine, debug, package,
-- require, loadfile or dofile: a config is one file, and calls that block
-- would stall every service. `load` takes text chunks only; `setmetatable`
-- refuses __gc. A hook's global assignments are its service's own.

---A service state as faild stores it. failsh accepts any case ("up");
---upper case is the convention.
---@alias failsh.State "UP"|"RECOVER"|"FAIL"

---A start, stop or reclaim hook: returns the state the service is in
---afterwards. An error (a failing `exec` raises one), the time limit, or any
---other value is a failed hook. A function, or the name of a global function
---(looked up once the config has run).
---@alias failsh.StateHook (fun(): failsh.State)|string

---A health check: `true`, `nil` or nothing is healthy; `false`, an error or
---the time limit stops the service and records FAIL, so a peer takes over.
---@alias failsh.CheckHook (fun(): boolean?)|string

---Host names: one, or a list. Each call replaces the list; `localhost`
---cannot be a master or slave.
---@alias failsh.Hosts string|string[]

---How failsh talks to a faild.
---@alias failsh.Protocol "tcp"|"udp"

---A number of seconds, fractions allowed, from 0.001 to 86400 (failsh also
---accepts a numeric string).
---@alias failsh.Seconds number

---The table form of `failsvc`: creates the service and sets it up in one call.
---@class failsh.Service
---@field name string The service's name, as in faild: 1-128 of `A-Z a-z 0-9 . _ - : @ + /`, not starting with `-`.
---@field interval? failsh.Seconds Seconds between polls and decisions. Default 5.
---@field timeout? failsh.Seconds How long a silent peer stays INDOUBT before it counts as FAIL; not below the interval. Default 3 x interval.
---@field hook_timeout? failsh.Seconds Time limit of each hook call; at the limit, every process its `exec` calls started is killed. Default 60.
---@field masters? failsh.Hosts Hosts above this one: while any is UP or RECOVER, the service does not run here.
---@field slaves? failsh.Hosts Hosts below this one: the service starts here only when none of them is UP.
---@field start failsh.StateHook Brings the service up (mandatory). failsh has written UP to the local faild before it calls it.
---@field stop failsh.StateHook Takes the service down (mandatory); its state is written only after it returns. Must be idempotent.
---@field reclaim? failsh.StateHook Re-announces the service after an insane slave stood down (e.g. a gratuitous ARP).
---@field check? failsh.CheckHook Health check, run every interval while the service runs here.

---The table form of `failhost`: how to reach one host's faild.
---@class failsh.Host
---@field name string The host's name as used in `masters` and `slaves`, or `localhost` (the local faild, which failsh writes to).
---@field address? string Host name or IP address of its faild. Default: the name (127.0.0.1 for localhost).
---@field port? integer Its faild's port, 1-65535. Default 1291.
---@field protocol? failsh.Protocol Default "tcp".
---@field community? string Community sent to that faild (1-64 visible ASCII characters); localhost's needs RW. Default "public".
---@field key_file? string Key file (lines `KEY-ID COMMUNITY|* hex:SECRET`, as faild's -k; relative to the config's directory): requests to that faild are signed with HMAC-SHA256 and only signed replies are believed. Read at load and on SIGHUP.
---@field key_id? string Which key of `key_file` signs (1-32 of A-Z a-z 0-9 . _ -). Default: the last key in the file for the community.

---Declares a service (the worked example's line form): first
---`failsvc(name, "create")`, then one call per setting. Or, in one call, the
---table form `failsvc{ name = ..., start = ..., stop = ... }`.
---
---```lua
---failsvc("vip", "create")
---failsvc("vip", "interval", 5)
---failsvc("vip", "start", startservice)
---failsvc("vip", "slaves", "macbeth")
---```
---@param name string The service's name, as in faild.
---@param subcommand "create" Creates the service; every other subcommand needs it first.
---@overload fun(name: string, subcommand: "interval"|"timeout"|"hooktimeout", seconds: failsh.Seconds)
---@overload fun(name: string, subcommand: "masters"|"slaves", ...: failsh.Hosts)
---@overload fun(name: string, subcommand: "start"|"stop"|"reclaim", hook: failsh.StateHook)
---@overload fun(name: string, subcommand: "check", hook: failsh.CheckHook)
---@overload fun(service: failsh.Service)
function failsvc(name, subcommand) end

---Says how to reach a host's faild: `failhost(host, key, value)`, or the
---table form `failhost{ name = ..., port = ..., ... }`. Hosts no call names
---get the defaults.
---
---```lua
---failhost("macbeth", "community", "public")
---failhost("localhost", "community", "genesis")
---```
---@param host string A master, a slave, or `localhost`.
---@param key "address"|"community"|"key_file"|"key_id"
---@param value string
---@overload fun(host: string, key: "port", value: integer)
---@overload fun(host: string, key: "protocol", value: failsh.Protocol)
---@overload fun(host: failsh.Host)
function failhost(host, key, value) end

---Runs `/bin/sh -c command` in a process group of its own (stdin from
---/dev/null) without holding up other services, and returns its standard
---output less one trailing newline (at most its first 64 KiB; the rest is
---read and thrown away). A non-zero exit raises
---`exec "command": exit status N: stderr` at the calling line (catch it
---with `pcall`). Waits until the command's output is closed.
---@param command string
---@return string stdout
function exec(command) end

---Logs its arguments, separated by spaces, at level info under the log
---facility `hook` (`failsh -d hook`), labelled `config` or `SERVICE HOOK`.
---@param ... any
function log(...) end

---The host's node name, as `uname -n` prints it.
---@return string
function hostname() end
