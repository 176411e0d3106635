//! JSONPath-like locations (`$.context.contextActivities.parent[0].id`) for
//! validation errors, built on the stack while walking a document and only
//! rendered to a string when something is wrong. No I/O, no HTTP.

use std::fmt::Write;

/// A location in a JSON document: the root, or a key or an index below
/// another location. Borrowed, `Copy`, never allocated until rendered.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path::Index(self, index)
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(32);
        self.write_into(&mut out);
        out
    }

    fn write_into(&self, out: &mut String) {
        match self {
            Path::Root => out.push('$'),
            Path::Key(parent, key) => {
                parent.write_into(out);
                push_key(out, key);
            }
            Path::Index(parent, index) => {
                parent.write_into(out);
                let _ = write!(out, "[{index}]");
            }
        }
    }
}

/// Appends `.key` for identifier-like keys, `['key']` for anything else
/// (IRIs as extension keys, language tags with `-`, ...).
pub(crate) fn push_key(out: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        for c in key.chars() {
            if c == '\'' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("']");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_and_indexes() {
        let root = Path::Root;
        let context = root.key("context");
        let ca = context.key("contextActivities");
        let parent = ca.key("parent");
        let first = parent.index(0);
        assert_eq!(
            first.key("id").render(),
            "$.context.contextActivities.parent[0].id"
        );
        let ext = context.key("extensions");
        assert_eq!(
            ext.key("http://x.example/it's").render(),
            "$.context.extensions['http://x.example/it\\'s']"
        );
        assert_eq!(root.render(), "$");
    }
}
