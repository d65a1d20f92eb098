//! What the config and its hooks may not do to failsh: the Lua side is
//! `sandbox.lua` (text chunks only, no file loading, no finalizers, the body
//! of every run, per-service globals, read-only libraries and string
//! metatable for the hooks, `rawget`/`rawset` that respect both); this is
//! its Rust handle.

use mlua::{Function, Lua};

/// The functions `sandbox.lua` returns.
pub(crate) struct Sandbox {
    /// `run(env, f)`: calls `f` under `pcall` with the globals `env` (none
    /// for the config) and returns `true, values...` or `false, error`.
    pub(crate) run: Function,
    /// `seal(globals)`: turns the config's globals into the read-only base
    /// the services' own globals sit on, and the libraries into read-only
    /// views.
    seal: Function,
}

impl Sandbox {
    /// Runs `sandbox.lua` in `lua`; before the config, while `coroutine` is
    /// still loaded.
    pub(crate) fn install(lua: &Lua) -> mlua::Result<Self> {
        let (run, seal) = lua
            .load(include_str!("sandbox.lua"))
            .set_name("=failsh sandbox")
            .set_mode(mlua::chunk::ChunkMode::Text)
            .call(())?;
        Ok(Self { run, seal })
    }

    /// Seals the globals once the config has run (see `seal` above).
    pub(crate) fn seal(&self, lua: &Lua) -> mlua::Result<()> {
        self.seal.call(lua.globals())
    }
}
