//! Diagnostics for spec and config files: `file:line:col`, what is wrong, a hint,
//! and the offending source line with a caret (in the style of rustc and Hurl).

use std::fmt;

use serde::Serialize;

use super::Pos;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Diagnostic {
    /// File as shown to the user.
    pub file: String,
    pub pos: Pos,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The source line at `pos` (for the caret display).
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            pos,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Attaches the source line the position points at.
    pub fn with_source(mut self, text: &str) -> Self {
        if self.pos.line > 0 {
            self.source_line = text
                .lines()
                .nth(self.pos.line as usize - 1)
                .map(str::to_string);
        }
        self
    }

    /// `file:line:col`
    pub fn location(&self) -> String {
        if self.pos.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.pos.line, self.pos.col)
        }
    }
}

impl Diagnostic {
    /// The location and the source line with a caret under the column, as a diagnostic shows
    /// them (for run-time failures, which have their own first line).
    pub fn snippet(&self) -> String {
        struct Snippet<'a>(&'a Diagnostic);
        impl fmt::Display for Snippet<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_snippet(f)
            }
        }
        Snippet(self).to_string()
    }

    fn fmt_snippet(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  --> {}", self.location())?;
        if let Some(line) = &self.source_line {
            let num = self.pos.line.to_string();
            let pad = " ".repeat(num.len());
            let col = (self.pos.col.max(1) - 1) as usize;
            // Underline the token at the column (up to the next space or colon).
            let rest: String = line.chars().skip(col).collect();
            let width = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != ':')
                .count()
                .max(1);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {line}")?;
            write!(f, "{pad} | {}{}", " ".repeat(col), "^".repeat(width))?;
            if let Some(h) = &self.hint {
                write!(f, " {h}")?;
            }
            writeln!(f)?;
        } else if let Some(h) = &self.hint {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        self.fmt_snippet(f)
    }
}

/// A problem found in a spec: where, what, and a hint.
pub(crate) type Problem = (Pos, String, Option<String>);

/// A diagnostic for serde's word on a value (`unknown field`, `invalid type`) at `pos`, with a
/// "did you mean" hint where a name was misspelled.
pub(crate) fn typed_diag(file: &str, text: &str, pos: Pos, msg: String) -> Diagnostic {
    // `grpc` is accepted by the parser only to reject it with the scope decision; don't advertise it.
    let msg = msg.replace(", `grpc`", "");
    let hint = unknown_field_hint(&msg);
    let msg = msg.replace(
        "data did not match any variant of untagged enum",
        "value has the wrong shape for",
    );
    Diagnostic::new(file, pos, msg)
        .with_hint(hint)
        .with_source(text)
}

/// From "unknown field `expct`, expected one of `a`, `b`" to "did you mean `expect`?".
fn unknown_field_hint(msg: &str) -> Option<String> {
    let rest = msg
        .split("unknown field `")
        .nth(1)
        .or_else(|| msg.split("unknown variant `").nth(1))?;
    let word = rest.split('`').next()?;
    let expected = rest.split("expected").nth(1)?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if word == "grpc" {
        return Some(super::GRPC_OUT_OF_SCOPE.to_string());
    }
    did_you_mean(word, candidates.iter().copied())
        .or_else(|| Some(format!("expected one of: {}", candidates.join(", "))))
}

/// "did you mean `x`?" for a misspelt name among the candidates.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_and_hint() {
        let d = Diagnostic::new("a.yaml", Pos { line: 2, col: 3 }, "unknown field `expct`")
            .with_hint(did_you_mean("expct", ["expect", "capture", "until"]))
            .with_source("steps:\n  expct: 1\n");
        let s = d.to_string();
        assert!(s.contains("--> a.yaml:2:3"), "{s}");
        assert!(s.contains("2 |   expct: 1"), "{s}");
        assert!(s.contains("  |   ^^^^^ did you mean `expect`?"), "{s}");
    }

    #[test]
    fn no_hint_for_unrelated_words() {
        assert_eq!(did_you_mean("zzz", ["expect", "capture"]), None);
    }
}
