-- IP address failover on host lukretia (the master).
--
-- Installed as /etc/failover/lukretia.lua; failsh -f /etc/failover/$(uname -n).lua
-- picks it on lukretia. Check it with: failsh -t -f /etc/failover/lukretia.lua
-- The Tcl config of the worked example, line by line. Hooks are Lua functions;
-- exec() runs a command with /bin/sh -c and raises an error (the hook fails)
-- if it exits non-zero, so a failed `ip` in /etc/init.d/vip is seen by failsh.

-- The start hook brings up the service address: /etc/init.d/vip up adds the
-- address and sends a gratuitous ARP. failsh writes UP to the local faild
-- *before* it calls this hook (so the slave never starts alongside), and a
-- start hook that fails is followed by the stop hook and FAIL.
local function startservice()
    exec("/etc/init.d/vip up")
    return "UP"
end

-- The stop hook takes the address down. The state it returns is what the
-- local faild says afterwards (written only once the hook has finished).
-- The convention of the example: a master returns "FAIL", so that once it
-- has stopped the service (e.g. a failed start, or a failed check) it stays
-- out until an admin says `/etc/init.d/vip recover`; a slave returns
-- "RECOVER" (see macbeth.lua), so that it is ready to take over again after
-- standing down for the master. When an admin asked for the stop
-- (failc -s FAIL, /etc/init.d/vip fail), the state the admin asked for is
-- published instead.
local function stopservice()
    exec("/etc/init.d/vip down")
    return "FAIL"
end

-- The reclaim hook recovers from an erratic slave: if macbeth went UP while
-- lukretia was UP (split brain), lukretia keeps the service, waits until
-- macbeth has stood down, then calls this hook; /etc/init.d/vip reclaim
-- sends a gratuitous ARP so that the clients' ARP entries point here again.
local function reclaimservice()
    exec("/etc/init.d/vip reclaim")
    return "UP"
end

failsvc("vip", "create")                    -- the service "vip", as named in faild
failsvc("vip", "interval", 5)               -- poll the peers every 5 s (fractions allowed)
                                            -- failsvc("vip", "timeout", 15): how long a peer that
                                            -- does not answer is INDOUBT before it counts as FAIL
                                            -- (default 3 x interval); failsvc("vip", "hooktimeout", 60):
                                            -- time limit of each hook (default 60 s)
failsvc("vip", "start", startservice)       -- a function, or the name of a global function
failsvc("vip", "stop", stopservice)
failsvc("vip", "reclaim", reclaimservice)
failsvc("vip", "slaves", "macbeth")         -- lukretia has no masters: it is the master

-- Optional health check, run every interval while the service is UP here.
-- Returning false or raising an error (exec of a failing command raises)
-- runs the stop hook and records FAIL, so that macbeth takes over. For
-- example, give up the address when the default gateway stops answering:
--
-- local function checkservice()
--     exec("ping -c 1 -W 2 192.0.2.1 >/dev/null")   -- your gateway
--     return true
-- end
-- failsvc("vip", "check", checkservice)

failhost("macbeth", "port", 1291)           -- how to reach macbeth's faild: its port,
failhost("macbeth", "protocol", "tcp")      -- tcp or udp,
failhost("macbeth", "community", "public")  -- and a community it lets us read with
                                            -- failhost("macbeth", "address", "10.1.2.3"):
                                            -- where its faild is, if not at the name macbeth

failhost("localhost", "port", 1291)         -- the local faild, where failsh writes this
failhost("localhost", "protocol", "tcp")    -- host's state of the service: it needs a
failhost("localhost", "community", "genesis") -- community with RW access (see communities)

-- The same service in the table form:
--
-- failsvc{
--     name = "vip",
--     interval = 5,
--     slaves = { "macbeth" },
--     start = startservice,
--     stop = stopservice,
--     reclaim = reclaimservice,
-- }
