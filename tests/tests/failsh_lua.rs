//! failsh as a process against hostile or broken Lua: nothing a hook or a
//! reloaded config does wedges failsh, kills it, or breaks another service.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use failover_tests::cluster::RULES;
use failover_tests::procstat::rss_kib;
use failover_tests::{Faild, Failsh, bin, read, send_signal, stdout, wait_for};

const BOUND: Duration = Duration::from_secs(30);

/// A faild with a RECOVER record for each service, and a failsh (hook log
/// on) managing them; `services` are (name, the rest of its `failsvc`
/// table). `@DIR@` in them stands for `dir`.
fn start(dir: &Path, services: &[(&str, &str)], env: &[(&str, &str)]) -> (Faild, Failsh) {
    let faild = Faild::start(dir, Some(RULES), &[]).unwrap();
    let mut lua = format!(
        "failhost(\"localhost\", \"address\", \"{}\")\nfailhost(\"localhost\", \"community\", \"genesis\")\n",
        faild.addr
    );
    for (name, rest) in services {
        let o = faild.failc(&["-c", "genesis", "-sRECOVER", name]);
        assert_eq!(o.status.code(), Some(0));
        lua.push_str(&format!(
            "failsvc{{ name = \"{name}\", interval = 0.2,\n{rest} }}\n"
        ));
    }
    let cfg = dir.join("host.lua");
    std::fs::write(&cfg, lua.replace("@DIR@", &dir.display().to_string())).unwrap();
    let mut failsh = Failsh::new(&cfg, faild.addr, 1848);
    failsh.extra = vec!["-d".into(), "hook".into()];
    for (key, value) in env {
        // SAFETY: nextest runs each test in a process of its own, and this
        // one reads the environment on this thread only.
        unsafe { std::env::set_var(key, value) };
    }
    failsh.restart().unwrap();
    for (key, _) in env {
        // SAFETY: as above.
        unsafe { std::env::remove_var(key) };
    }
    (faild, failsh)
}

/// Lines in a file a hook appends to.
fn count(path: &Path) -> usize {
    read(path).lines().count()
}

/// The record of `service` in the local faild.
fn record(faild: &Faild, service: &str) -> String {
    stdout(&faild.failc(&[service]))
}

/// A service whose check appends a line to `@DIR@/NAME.checks` each time.
fn counted(name: &str) -> String {
    format!(
        "start = function() return \"UP\" end, stop = function() return \"FAIL\" end,\n\
         check = function() log(\"{name} check\"); exec(\"echo c >> @DIR@/{name}.checks\") end"
    )
}

/// Waits until `name`'s checks have run `more` more times.
fn checks_go_on(dir: &Path, failsh: &Failsh, name: &str, more: usize) {
    let file = dir.join(format!("{name}.checks"));
    let before = count(&file);
    wait_for(&format!("{more} more checks of {name}"), BOUND, || {
        count(&file) >= before + more
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
}

/// Sends SIGTERM and waits for the exit; returns how long it took.
fn stop(mut failsh: Failsh, limit: Duration) -> Duration {
    let pid = failsh.pid();
    let started = Instant::now();
    send_signal(pid, "TERM");
    // Exited: a zombie until the harness reaps it.
    wait_for("failsh to exit on SIGTERM", limit, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.contains(") Z "))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    let took = started.elapsed();
    failsh.kill9();
    took
}

#[test]
fn an_error_object_with_a_looping_tostring_wedges_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wedge = "hook_timeout = 2,\n\
        start = function() error(setmetatable({}, { __tostring = function() while true do end end })) end,\n\
        stop = function() return \"FAIL\" end";
    let (faild, failsh) = start(dir, &[("wedge", wedge), ("other", &counted("other"))], &[]);
    wait_for("wedge's start hook to fail", BOUND, || {
        failsh.log().contains("(error object is a table value)")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    checks_go_on(dir, &failsh, "other", 5);
    wait_for("wedge recorded FAIL", BOUND, || {
        record(&faild, "wedge").contains(" FAIL ")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    let took = stop(failsh, Duration::from_secs(10));
    println!("SIGTERM to exit: {took:?}");
}

#[test]
fn a_hook_that_exhausts_memory_fails_and_failsh_lives_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hog = "start = function() return \"UP\" end, stop = function() return \"FAIL\" end,\n\
        check = function() local t = {} for i = 1, 1e9 do t[i] = i end end";
    let (faild, failsh) = start(dir, &[("hog", hog), ("other", &counted("other"))], &[]);
    wait_for("hog's check to fail and FAIL to be recorded", BOUND, || {
        record(&faild, "hog").contains(" FAIL ")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    assert!(
        failsh
            .log()
            .contains("not enough memory (the Lua memory limit is 64 MiB)"),
        "{}",
        failsh.log()
    );
    checks_go_on(dir, &failsh, "other", 3);
    let rss = rss_kib(failsh.pid()).unwrap();
    println!("failsh RSS after the hog: {} MiB", rss >> 10);

    // A reload that builds a huge table is refused; the old config runs on.
    let cfg = dir.join("host.lua");
    let old = read(&cfg);
    std::fs::write(
        &cfg,
        format!("{old}\nlocal t = {{}}\nfor i = 1, 1e9 do t[i] = i end\n"),
    )
    .unwrap();
    send_signal(failsh.pid(), "HUP");
    wait_for("the refused reload", BOUND, || {
        failsh.log().contains("not enough memory (the Lua memory limit is 64 MiB); the previous config stays in force")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    checks_go_on(dir, &failsh, "other", 3);
    assert!(
        failsh.snapshot().lines().any(|l| l.starts_with("other ")),
        "{}",
        failsh.snapshot()
    );
    stop(failsh, BOUND);
}

#[test]
fn exec_of_endless_output_keeps_failsh_small() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let yes = "hook_timeout = 3,\n\
        start = function() exec(\"touch @DIR@/yes.started; yes\") return \"UP\" end,\n\
        stop = function() return \"FAIL\" end";
    let (faild, failsh) = start(dir, &[("yes", yes)], &[]);
    let pid = failsh.pid();
    wait_for("yes to start", BOUND, || dir.join("yes.started").exists()).unwrap();
    let mut peak = 0;
    wait_for("the start hook's time limit", BOUND, || {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        record(&faild, "yes").contains(" FAIL ")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    println!(
        "failsh peak RSS while `yes` ran for 3 s: {} MiB",
        peak >> 10
    );
    assert!(peak < 200 << 10, "peak RSS {} MiB", peak >> 10);
}

#[test]
fn a_binary_chunk_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let binary = "start = function() assert(load(string.dump(function() end))) return \"UP\" end,\n\
        stop = function() return \"FAIL\" end";
    let (faild, failsh) = start(dir, &[("binary", binary)], &[]);
    wait_for("the start to fail", BOUND, || {
        record(&faild, "binary").contains(" FAIL ")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    assert!(
        failsh
            .log()
            .contains("attempt to load a binary chunk (mode is 't')"),
        "{}",
        failsh.log()
    );
}

#[test]
fn one_service_setting_log_to_nil_breaks_no_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let vandal = "start = function() log, exec = nil, nil; return \"UP\" end,\n\
        stop = function() return \"FAIL\" end";
    let (faild, failsh) = start(
        dir,
        &[("vandal", vandal), ("victim", &counted("victim"))],
        &[],
    );
    wait_for("vandal to start", BOUND, || {
        record(&faild, "vandal").contains(" UP ")
    })
    .unwrap();
    checks_go_on(dir, &failsh, "victim", 5);
    assert!(
        record(&faild, "victim").contains(" UP "),
        "{}",
        failsh.log()
    );
}

#[test]
fn a_looping_reload_does_not_delay_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_faild, failsh) = start(dir, &[("other", &counted("other"))], &[]);
    checks_go_on(dir, &failsh, "other", 1);
    let cfg = dir.join("host.lua");
    let old = read(&cfg);
    let marker = dir.join("reloading");
    std::fs::write(
        &cfg,
        format!(
            "{old}\nexec(\"touch {}\")\nwhile true do end\n",
            marker.display()
        ),
    )
    .unwrap();
    send_signal(failsh.pid(), "HUP");
    wait_for("the reload to run", BOUND, || marker.exists()).unwrap();
    // The hooks go on meanwhile.
    checks_go_on(dir, &failsh, "other", 3);
    let took = stop(failsh, Duration::from_secs(10));
    println!("SIGTERM to exit during a looping reload: {took:?}");
}

#[test]
fn the_community_variables_reach_no_hook_and_no_help_text() {
    let secret = "s3cret-community";
    let other = "failc-s3cret";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env_hook = "start = function() exec(\"env > @DIR@/hook.tmp && mv @DIR@/hook.tmp @DIR@/hook.env\") return \"UP\" end,\n\
        stop = function() return \"FAIL\" end";
    let (faild, failsh) = start(
        dir,
        &[("env", env_hook)],
        &[
            ("FAILSH_COMMUNITY", secret),
            ("FAILC_COMMUNITY", other),
            ("FAILDEBUG_COMMUNITY", other),
        ],
    );
    // failsh claims UP before the start hook runs: wait for the hook's file.
    wait_for("the start hook", BOUND, || {
        record(&faild, "env").contains(" UP ") && dir.join("hook.env").exists()
    })
    .unwrap();
    let env = read(&dir.join("hook.env"));
    assert!(
        !env.contains("COMMUNITY") && !env.contains(secret) && !env.contains(other),
        "{env}"
    );
    drop(failsh);
    let help = Command::new(bin("failsh"))
        .arg("--help")
        .env("FAILSH_COMMUNITY", secret)
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(
        stdout(&help).contains("FAILSH_COMMUNITY"),
        "{}",
        stdout(&help)
    );
    assert!(!stdout(&help).contains(secret), "{}", stdout(&help));
}

/// Lets a running process map at most `more` bytes beyond what it has
/// mapped now, so that a Rust allocation beyond that fails (and aborts
/// failsh) instead of eating the machine when a defence is missing.
fn limit_address_space(pid: u32, more: u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let size_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmSize");
    let bytes = (size_kib << 10) + more;
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--as={bytes}")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit failed");
}

/// `log` with 10,000 references to one 1 MiB string costs Lua 1 MiB but
/// would have Rust copy 10 GB: failsh must cut the line before copying,
/// stay alive and stay small.
#[test]
fn log_of_many_references_to_a_big_string_keeps_failsh_small() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flood = "start = function() return \"UP\" end, stop = function() return \"FAIL\" end,\n\
        check = function()\n\
            local s, t = string.rep(\"x\", 1 << 20), {}\n\
            for i = 1, 10000 do t[i] = s end\n\
            log(\"flood\", table.unpack(t))\n\
            exec(\"echo c >> @DIR@/flood.checks\")\n\
        end";
    let (_faild, failsh) = start(dir, &[("flood", flood), ("other", &counted("other"))], &[]);
    let pid = failsh.pid();
    limit_address_space(pid, 1 << 30);
    let mut peak = 0;
    let file = dir.join("flood.checks");
    wait_for("three flooding checks", BOUND, || {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        count(&file) >= 3
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", failsh.log()));
    checks_go_on(dir, &failsh, "other", 3);
    println!("failsh peak RSS during log floods: {} MiB", peak >> 10);
    assert!(peak < 200 << 10, "peak RSS {} MiB", peak >> 10);
    let log = failsh.log();
    let line = log
        .lines()
        .find(|l| l.contains("hook: flood x"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.len() < 5 << 10 && line.contains("x…"), "{line}");
    stop(failsh, BOUND);
}

/// failsh raises its own open-file soft limit (its ports' clients need
/// descriptors), but a hook gets the limit failsh was started with:
/// programs that `select()` or close every descriptor up to the limit
/// break or slow down with a raised one.
#[test]
fn hooks_get_the_open_file_limit_failsh_started_with() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let low = 200;
    assert!(
        hard > low,
        "the hard open-file limit is {hard}: nothing to test"
    );
    // nextest runs each test in a process of its own: faild and failsh
    // inherit this.
    setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
    let hook = "start = function() exec(\"ulimit -Sn > @DIR@/limit.tmp && mv @DIR@/limit.tmp @DIR@/hook.limit\") return \"UP\" end,\n\
        stop = function() return \"FAIL\" end";
    let (_faild, failsh) = start(dir, &[("limit", hook)], &[]);
    let limits = read(Path::new(&format!("/proc/{}/limits", failsh.pid())));
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert!(
        line.split_whitespace().nth(3) == Some(&hard.to_string()),
        "failsh raised its own soft limit: {line}"
    );
    let file = dir.join("hook.limit");
    wait_for("the start hook", BOUND, || file.exists()).unwrap();
    let seen = read(&file);
    println!(
        "failsh started with a soft limit of {low} (hard {hard}); its hook sees {}",
        seen.trim()
    );
    assert_eq!(seen.trim(), low.to_string());
}
