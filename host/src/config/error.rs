use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::etcd_source::Origin;

/// One problem in a config file, located so that a person can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no place in the file (e.g. it could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ConfigError {
    /// A problem with no place in the file (it could not be read, etcd did not answer).
    pub fn whole(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Turns byte offsets into line and column for one file's text.
pub(crate) struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Stretches of the text that came from etcd keys rather than the file.
    pub origins: &'a [Origin],
}

impl Locator<'_> {
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let start = span.start.min(self.text.len());
        let line_of = |at: usize| self.text[..at].matches('\n').count() + 1;
        let (line, column) = if span == (0..0) {
            (0, 0)
        } else {
            let before = &self.text[..start];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            (line_of(start), before[line_start..].chars().count() + 1)
        };
        let from_etcd = self
            .origins
            .iter()
            .rev()
            .find(|o| line > 0 && o.start <= start);
        match from_etcd {
            // Lines of the entry's value count from 1; its generated header reads as line 1 too.
            Some(o) => ConfigError {
                file: PathBuf::from(format!("etcd:{}", o.key)),
                line: (line + 1)
                    .saturating_sub(line_of(o.start) + o.header_lines)
                    .max(1),
                column,
                message: message.into(),
            },
            None => ConfigError {
                file: self.file.to_path_buf(),
                line,
                column,
                message: message.into(),
            },
        }
    }
}
