//! Which files a spec may read (`include`, `vars_file`, `body_file`, multipart and `schema`
//! files), and how paths are shown: rules of the spec model, used by the loader at load time and
//! by the engine at run time.

use std::path::{Path, PathBuf};

/// Where the files a spec reads (`include`, `vars_file`, `body_file`, multipart files, `schema`
/// files) may be: inside the project (the config file's folder) or a path the config lists
/// under `allow_paths`. No roots: anywhere (a spec loaded without a project, as in unit tests).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Canonical folders (or files) a spec may read from.
    pub roots: Vec<PathBuf>,
    /// The largest `body_file` (or multipart file): the larger `max_body` of the targets.
    pub max_body: Option<u64>,
}

/// Why a spec may not read a file. The message names the rule and never quotes the file: a
/// refused file is not read at all.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{what} `{path}` cannot be read: {source}")]
    Unreadable {
        what: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{what} `{path}` is outside the project: a spec reads files only inside {roots} (rule: files stay in the folder of the config file unless `allow_paths` in it lists them)")]
    Outside {
        what: String,
        path: String,
        roots: String,
    },
    #[error("{what} `{path}` is not a regular file (a folder, a device or a FIFO): only regular files are read")]
    NotRegular { what: String, path: String },
    #[error("{what} `{path}` has {len} bytes, more than `max_body` ({max} bytes): raise `max_body` of the target, or send a smaller file")]
    TooLarge {
        what: String,
        path: String,
        /// Bytes found (at least `max + 1` when the file grew while it was read).
        len: u64,
        max: u64,
    },
}

impl AccessError {
    /// The message with how to fix it, for a step error at run time (a diagnostic carries the
    /// fix as its hint instead).
    pub fn with_fix(&self) -> String {
        match self {
            AccessError::Outside { .. } | AccessError::NotRegular { .. } => {
                format!("{self}: {ACCESS_HINT}")
            }
            _ => self.to_string(),
        }
    }
}

impl Access {
    /// The canonical path of `path` when a spec may read it: it exists, lies inside a root and
    /// is a regular file (not a device such as /dev/zero, a FIFO or a folder). The error says
    /// which rule refused it and never quotes the file.
    pub fn check(&self, path: &Path, what: &str) -> Result<PathBuf, AccessError> {
        let unreadable = |source| AccessError::Unreadable {
            what: what.into(),
            path: display_path(path),
            source,
        };
        let canon = std::fs::canonicalize(path).map_err(unreadable)?;
        if !self.roots.is_empty() && !self.roots.iter().any(|r| canon.starts_with(r)) {
            return Err(AccessError::Outside {
                what: what.into(),
                path: display_path(path),
                roots: self
                    .roots
                    .iter()
                    .map(|r| format!("`{}`", r.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let meta = std::fs::metadata(&canon).map_err(unreadable)?;
        if !meta.is_file() {
            return Err(AccessError::NotRegular {
                what: what.into(),
                path: display_path(path),
            });
        }
        Ok(canon)
    }

    /// [`Access::check`], and the file is at most `max_body` bytes.
    pub fn check_body(&self, path: &Path, what: &str) -> Result<PathBuf, AccessError> {
        let canon = self.check(path, what)?;
        let len = std::fs::metadata(&canon).map(|m| m.len()).unwrap_or(0);
        match self.max_body {
            Some(max) if len > max => Err(AccessError::TooLarge {
                what: what.into(),
                path: display_path(path),
                len,
                max,
            }),
            _ => Ok(canon),
        }
    }

    /// Reads a file a request sends (`body_file`, a multipart file) at run time, where its
    /// path may come from a template: [`Access::check_body`], then at most `max_body` bytes
    /// are read, so a file that grows after the check still ends in an error, not in memory.
    pub fn read_body(&self, path: &Path, what: &str) -> Result<(PathBuf, Vec<u8>), AccessError> {
        use std::io::Read;
        let canon = self.check_body(path, what)?;
        let unreadable = |source| AccessError::Unreadable {
            what: what.into(),
            path: display_path(path),
            source,
        };
        let file = std::fs::File::open(&canon).map_err(unreadable)?;
        let mut data = Vec::new();
        match self.max_body {
            Some(max) => {
                file.take(max.saturating_add(1))
                    .read_to_end(&mut data)
                    .map_err(unreadable)?;
                if data.len() as u64 > max {
                    return Err(AccessError::TooLarge {
                        what: what.into(),
                        path: display_path(path),
                        len: data.len() as u64,
                        max,
                    });
                }
            }
            None => {
                let mut file = file;
                file.read_to_end(&mut data).map_err(unreadable)?;
            }
        }
        Ok((canon, data))
    }
}

/// Shown path: relative to the working directory when possible.
pub fn display_path(p: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match cwd.as_ref().and_then(|c| abs.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => p.display().to_string(),
    }
}

/// How to fix a file refused by [`Access`] (the diagnostic's hint, and the run's error).
pub const ACCESS_HINT: &str =
    "move the file into the project, or list its folder under `allow_paths:` in the config file";
