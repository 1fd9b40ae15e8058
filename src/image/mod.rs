//! Agent images with the real `claude` in them, built with no registry and no Dockerfile
//! to write: find the host's CLI, work out what it links, describe the build context as
//! data, then stream it to the engine. `commands::image` drives these steps.

pub mod claude;
pub(crate) mod context;
pub(crate) mod deps;
pub(crate) mod elf;
pub(crate) mod reference;
pub(crate) mod tag;

pub mod label {
    //! Labels on the images claunch builds: what decides whether a rebuild is needed.
    /// SHA-256 of the `claude` binary inside.
    pub const CLAUDE_SHA256: &str = "claunch.claude-sha256";
    /// `claude --version`'s version.
    pub const CLAUDE_VERSION: &str = "claunch.claude-version";
    /// The layout claunch gives its images; bumped when it changes, so old ones rebuild.
    pub const FORMAT: &str = "claunch.image-format";
    /// With `--base`: the base as given, and the id it had.
    pub const BASE: &str = "claunch.base";
    pub const BASE_ID: &str = "claunch.base-id";
}

/// The current value of [`label::FORMAT`].
pub const FORMAT: &str = "1";
