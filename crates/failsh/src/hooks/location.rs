//! One-line `file:line: message` text from Lua positions and errors.
//!
//! The config chunk is named `@PATH`, so Lua itself prefixes its errors with
//! `PATH:LINE:`. Lua shortens a name longer than about 60 bytes to
//! `...TAIL`; [`Locator`] puts the path back as the admin gave it.

use std::path::Path;

use mlua::{Error, Lua, Value};

use super::engine::MEMORY_LIMIT;
use super::text::{excerpt, shorten};

/// Lua's message for an allocation it could not make.
const NO_MEMORY: &str = "not enough memory";
/// Longest error line kept (before the file name is put back in full):
/// messages go to the log, the monitor and faild's records, and an error
/// raised with a huge string must not be copied whole.
pub(crate) const MAX_ERROR_LINE: usize = 300;
/// How much of an error string is looked at for its first non-empty line.
const ERROR_HEAD: usize = 4 << 10;

/// Where the config came from, and how Lua abbreviates that in positions.
#[derive(Debug, Clone)]
pub(crate) struct Locator {
    /// The path as given to `load`.
    full: String,
    /// Lua's `short_src` for the chunk; equal to `full` unless shortened.
    short: String,
}

impl Locator {
    pub(crate) fn new(lua: &Lua, path: &Path) -> mlua::Result<Self> {
        let full = path.display().to_string();
        // Ask Lua how it will print this chunk name, rather than copying its
        // abbreviation rule.
        let short = lua
            .load("")
            .set_name(format!("@{full}"))
            .into_function()?
            .info()
            .short_src
            .unwrap_or_else(|| full.clone());
        Ok(Self { full, short })
    }

    /// The chunk name to load the config under.
    pub(crate) fn chunk_name(&self) -> String {
        format!("@{}", self.full)
    }

    /// `message` with Lua's abbreviated file name replaced by the full one.
    pub(crate) fn fix(&self, message: &str) -> String {
        if self.short == self.full {
            message.to_string()
        } else {
            message.replace(&self.short, &self.full)
        }
    }

    /// The first line of an error's message: the root cause of a callback
    /// error, without mlua's "runtime error: " prefix or a stack traceback.
    pub(crate) fn one_line(&self, err: &Error) -> String {
        let mut err = err;
        while let Error::CallbackError { cause, .. } = err {
            err = cause;
        }
        let text = match err {
            Error::RuntimeError(m) | Error::SyntaxError { message: m, .. } => m.clone(),
            Error::MemoryError(_) => NO_MEMORY.to_string(),
            other => other.to_string(),
        };
        self.first_line(&text)
    }

    /// An error value a run raised and caught, as one line, without running
    /// any Lua code: a `__tostring` metamethod could loop beyond every time
    /// limit. Strings and numbers as they are, failsh's own errors by their
    /// message, anything else by its type (as the standalone `lua` does).
    pub(crate) fn raised(&self, value: &Value) -> String {
        match value {
            Value::String(s) => self.first_line(&excerpt(s, ERROR_HEAD)),
            Value::Integer(_) | Value::Number(_) => value.to_string().unwrap_or_default(),
            Value::Error(e) => self.one_line(e),
            other => format!("(error object is a {} value)", other.type_name()),
        }
    }

    /// The first non-empty line of `text`, cut to [`MAX_ERROR_LINE`]
    /// bytes, with the full file name; an allocation failure says what the
    /// limit is.
    fn first_line(&self, text: &str) -> String {
        match text.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(line) if line.ends_with(NO_MEMORY) => format!(
                "{} (the Lua memory limit is {} MiB)",
                self.fix(&shorten(line, MAX_ERROR_LINE)),
                MEMORY_LIMIT >> 20
            ),
            Some(line) => self.fix(&shorten(line, MAX_ERROR_LINE)),
            None => "unknown Lua error".to_string(),
        }
    }

    /// `file:line` of the innermost Lua function calling the running Rust
    /// callback (C functions such as `pcall` in between are skipped), or the
    /// file alone if no Lua line is on the stack.
    pub(crate) fn caller(&self, lua: &Lua) -> String {
        (1..)
            .map_while(|level| {
                lua.inspect_stack(level, |d| {
                    let src = d.source().short_src.map(|s| s.into_owned());
                    d.current_line().zip(src)
                })
            })
            .flatten()
            .next()
            .map(|(line, src)| format!("{}:{line}", self.fix(&src)))
            .unwrap_or_else(|| self.full.clone())
    }
}
