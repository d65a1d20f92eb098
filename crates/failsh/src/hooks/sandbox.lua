-- failsh's sandbox: runs once in every Lua state, before the config, and
-- returns the two functions crates/failsh/src/hooks/sandbox.rs uses.
-- Everything it needs is captured here as locals, so nothing the config or a
-- hook does to the globals later can change how it works.
local load, pcall, select, setmetatable, rawget, rawset, next, error, type =
    load, pcall, select, setmetatable, rawget, rawset, next, error, type
local running = coroutine.running

-- Text chunks only: Lua does not check binary chunks, and a crafted one can
-- crash the VM.
_ENV.load = function(chunk, name, _, ...)
    if select("#", ...) == 0 then
        return load(chunk, name, "t")
    end
    return load(chunk, name, "t", (...))
end
-- They read a file while holding the Lua state (a FIFO without a writer
-- blocks every hook, beyond any time limit), and would accept binary chunks.
_ENV.loadfile, _ENV.dofile = nil, nil

-- A finalizer runs during garbage collection, with Lua's debug hooks off: a
-- loop in one would run beyond every time limit. Lua registers an object for
-- finalization only when setmetatable sees __gc, so this check suffices.
_ENV.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
        error("setmetatable: __gc metamethods are not allowed in failsh", 2)
    end
    return setmetatable(t, mt)
end

-- The global table of each run in progress, by its Lua thread; none for
-- the config itself.
local envs = setmetatable({}, { __mode = "k" })

local function finish(ok, ...)
    if ok then
        return true, ...
    end
    return false, (...)
end

-- The body of every run: calls f with the run's globals, and returns true
-- and f's values, or false and the error value unconverted, so that no
-- __tostring of an error object ever runs outside the run's time limit.
local function run(env, f)
    envs[running()] = env
    return finish(pcall(f))
end

-- Once the config has run: its globals become a read-only base, and every
-- service's hooks read and write a global table of their own on top of it.
local function seal(globals)
    local base = {}
    for k, v in next, globals do
        base[k] = v
    end
    for k in next, base do
        rawset(globals, k, nil)
    end
    setmetatable(globals, {
        __index = function(_, k)
            local env = envs[running()]
            if env ~= nil then
                local v = rawget(env, k)
                if v ~= nil then
                    return v
                end
            end
            return base[k]
        end,
        __newindex = function(_, k, v)
            local env = envs[running()]
            if env == nil then
                error("globals are read-only outside a service's hooks", 2)
            end
            rawset(env, k, v)
        end,
        __pairs = function()
            return next, base, nil
        end,
        __metatable = false,
    })
end

return run, seal
