-- IP address failover on host macbeth (the slave).
--
-- Installed as /etc/failover/macbeth.lua; failsh -f /etc/failover/$(uname -n).lua
-- picks it on macbeth. Check it with: failsh -t -f /etc/failover/macbeth.lua
-- The Tcl config of the worked example, line by line; see lukretia.lua for
-- the master's side.

-- The start hook brings up the service address (add it, gratuitous ARP).
-- macbeth starts the service only when its master lukretia is neither UP nor
-- RECOVER (it is FAIL, or has not answered for the timeout), and writes UP
-- to the local faild before calling this hook.
local function startservice()
    exec("/etc/init.d/vip up")
    return "UP"
end

-- The stop hook takes the address down. A slave returns "RECOVER": it stops
-- because the master is back (UP or RECOVER), and must stay ready to take
-- over again the next time the master fails. The master sees macbeth in
-- RECOVER only after this hook has finished, and then starts the service.
-- (The master, lukretia, returns "FAIL" instead.)
local function stopservice()
    exec("/etc/init.d/vip down")
    return "RECOVER"
end

-- The reclaim hook: a host that keeps the service while another host may
-- have announced it meanwhile (seen UP beside it, or changes it missed)
-- waits for the other to stand down, then reclaims: announces the address
-- again. macbeth reclaims too, e.g. after its master came up and failed
-- again between two polls.
local function reclaimservice()
    exec("/etc/init.d/vip reclaim")
    return "UP"
end

failsvc("vip", "create")                    -- the service "vip", as named in faild
failsvc("vip", "interval", 5)               -- poll lukretia every 5 s; default timeout
                                            -- 3 x interval: lukretia unanswered for 15 s
                                            -- counts as FAIL, and macbeth takes over
failsvc("vip", "start", startservice)       -- a function, or the name of a global function
failsvc("vip", "stop", stopservice)
failsvc("vip", "reclaim", reclaimservice)
failsvc("vip", "masters", "lukretia")       -- macbeth has no slaves: it is the slave

-- Optional health check (see lukretia.lua), run every interval while the
-- service is UP here; false or an error stops it and records FAIL:
--
-- failsvc("vip", "check", function()
--     exec("ping -c 1 -W 2 192.0.2.1 >/dev/null")   -- your gateway
--     return true
-- end)

failhost("lukretia", "port", 1291)          -- how to reach lukretia's faild
failhost("lukretia", "protocol", "tcp")
failhost("lukretia", "community", "public") -- read-only is enough for a peer

failhost("localhost", "port", 1291)         -- the local faild, written with a
failhost("localhost", "protocol", "tcp")    -- community with RW access
failhost("localhost", "community", "genesis")

-- The same service in the table form:
--
-- failsvc{
--     name = "vip",
--     interval = 5,
--     masters = { "lukretia" },
--     start = startservice,
--     stop = stopservice,
--     reclaim = reclaimservice,
-- }
