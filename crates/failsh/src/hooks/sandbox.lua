-- failsh's sandbox: runs once in every Lua state, before the config, and
-- returns the two functions crates/failsh/src/hooks/sandbox.rs uses.
-- Everything it needs is captured here as locals, so nothing the config or a
-- hook does to the globals later can change how it works.
local load, pcall, select, setmetatable, getmetatable, rawget, rawset, next, error, type =
    load, pcall, select, setmetatable, getmetatable, rawget, rawset, next, error, type
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

-- Tables shared by every service that a hook may read but not write
-- (sealed globals, library proxies), each with the function rawget and
-- rawset use on it instead of their raw access.
local guarded = setmetatable({}, { __mode = "k" })

-- rawget and rawset bypass __index and __newindex, and so would read and
-- write a guarded table itself: on the globals, rawset would reach every
-- service, and on a library proxy, rawget would see nothing.
_ENV.rawget = function(t, k)
    local guard = guarded[t]
    if guard ~= nil then
        return guard.get(k)
    end
    return rawget(t, k)
end
_ENV.rawset = function(t, k, v)
    local guard = guarded[t]
    if guard ~= nil then
        guard.set(k, v)
        return t
    end
    return rawset(t, k, v)
end

-- `pairs` over `source` without handing `source` itself out (pairs returns
-- its state value to the caller).
local function pairs_of(source)
    return function()
        local k
        return function()
            local v
            k, v = next(source, k)
            return k, v
        end
    end
end

-- A read-only view of a library table: reads reach `lib`, writes fail, its
-- metatable (and so `lib`) cannot be had.
local function read_only(name, lib)
    local function refuse()
        error(name .. " is read-only in failsh's hooks", 3)
    end
    local proxy = setmetatable({}, {
        __index = lib,
        __newindex = function()
            refuse()
        end,
        __pairs = pairs_of(lib),
        __metatable = false,
    })
    guarded[proxy] = {
        get = function(k)
            return rawget(lib, k)
        end,
        set = refuse,
    }
    return proxy
end

-- The string metatable gives every string its methods (`s:rep(2)`): its
-- __index is the real `string` table, which getmetatable("") would hand
-- out to be changed for everybody. Hidden from the start; its __index
-- becomes a read-only view at seal.
local string_meta = getmetatable("")
local string_lib = string_meta.__index
string_meta.__metatable = false

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

-- The libraries the hooks may read but not change, so that one service
-- cannot replace `string.format` for another. The config may still extend
-- them while it runs.
local LIBRARIES = { "string", "table", "math", "utf8" }

-- Once the config has run: its globals become a read-only base, and every
-- service's hooks read and write a global table of their own on top of it.
-- The libraries become read-only views.
local function seal(globals)
    local base = {}
    for k, v in next, globals do
        base[k] = v
    end
    for k in next, base do
        rawset(globals, k, nil)
    end
    local views = {}
    for _, name in next, LIBRARIES do
        local lib = base[name]
        if type(lib) == "table" then
            views[lib] = read_only(name, lib)
            base[name] = views[lib]
        end
    end
    string_meta.__index = views[string_lib] or read_only("string", string_lib)
    local function get(k)
        local env = envs[running()]
        if env ~= nil then
            local v = rawget(env, k)
            if v ~= nil then
                return v
            end
        end
        return base[k]
    end
    local function set(k, v)
        local env = envs[running()]
        if env == nil then
            error("globals are read-only outside a service's hooks", 3)
        end
        rawset(env, k, v)
    end
    setmetatable(globals, {
        __index = function(_, k)
            return get(k)
        end,
        __newindex = function(_, k, v)
            set(k, v)
        end,
        __pairs = pairs_of(base),
        __metatable = false,
    })
    guarded[globals] = { get = get, set = set }
end

return run, seal
