//! Shared helpers for editing twoliter's TOML files (Twoliter.toml, Twoliter.override,
//! Twoliter.lock, and a kit repo's Infra.toml) without disturbing the bytes we do not mean to
//! change.
//!
//! Line endings: toml_edit writes `\n` after every key and header it renders, so a CRLF file
//! would come back as LF. A file whose newlines are mostly `\r\n` is therefore edited as LF and
//! turned back into CRLF on output. toml_edit cannot keep a per-line choice, so an edited file
//! with mixed endings comes back uniformly in its majority style (an unedited one comes back byte
//! for byte).

use anyhow::{anyhow, bail, Result};
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// A parsed file plus what is needed to give its text back in the same style.
pub(crate) struct Doc {
    pub(crate) doc: DocumentMut,
    original: String,
    crlf: bool,
    changed: bool,
}

impl Doc {
    /// Parses `text`; errors name `file` and the parse error.
    pub(crate) fn parse(file: &str, text: &str) -> Result<Doc> {
        let newlines = text.matches('\n').count();
        let crlf = text.matches("\r\n").count() * 2 > newlines;
        let normalized = if crlf {
            text.replace("\r\n", "\n")
        } else {
            text.to_owned()
        };
        let doc = normalized
            .parse::<DocumentMut>()
            .map_err(|err| anyhow!("{file} is not valid TOML: {}", err.to_string().trim_end()))?;
        Ok(Doc {
            doc,
            original: text.to_owned(),
            crlf,
            changed: false,
        })
    }

    /// Records that an edit changed the document (see [`Doc::render`]).
    pub(crate) fn mark_changed(&mut self, changed: bool) {
        self.changed |= changed;
    }

    /// The root table, for reading and editing.
    pub(crate) fn root(&mut self) -> &mut Table {
        self.doc.as_table_mut()
    }

    /// The edited text. When no edit changed anything, the original text byte for byte, so
    /// running an edit again never reformats a file.
    pub(crate) fn render(self) -> String {
        if !self.changed {
            return self.original;
        }
        let text = self.doc.to_string();
        if self.crlf {
            text.replace('\n', "\r\n")
        } else {
            text
        }
    }
}

/// Sets `item` to the string `value`, keeping the decor around the old value (its inline
/// comment, its spacing). Returns whether anything changed; an equal string is left as written
/// (so a literal `'…'` string stays literal).
pub(crate) fn set_str(item: &mut Item, value: &str) -> bool {
    if item.as_str() == Some(value) {
        return false;
    }
    let mut new = Value::from(value);
    if let Some(old) = item.as_value() {
        *new.decor_mut() = old.decor().clone();
    }
    *item = Item::Value(new);
    true
}

/// Sets `key = "value"` in a table or inline table, inserting it at the end when missing.
/// Errors when the key holds a table (that is a shape we will not guess a fix for).
pub(crate) fn set_str_key(table: &mut dyn TableLike, key: &str, value: &str, what: &str) -> Result<bool> {
    match table.get_mut(key) {
        Some(item) if item.is_table() || item.is_array_of_tables() => {
            bail!("{what}.{key} is a table but must be a string: write `{key} = \"{value}\"`")
        }
        Some(item) => Ok(set_str(item, value)),
        None => {
            table.insert(key, Item::Value(Value::from(value)));
            Ok(true)
        }
    }
}

/// The entries of an array of tables such as `[[kit]]`, also accepting the equivalent inline
/// array `kit = [{ … }, …]`. A `[kit.<name>]` table is rejected with how to rewrite it.
pub(crate) fn table_array<'a>(root: &'a Table, key: &str, file: &str) -> Result<Vec<&'a dyn TableLike>> {
    match root.get(key) {
        None => Ok(Vec::new()),
        Some(Item::ArrayOfTables(tables)) => Ok(tables.iter().map(|t| t as &dyn TableLike).collect()),
        Some(Item::Value(Value::Array(values))) => values
            .iter()
            .enumerate()
            .map(|(index, value)| match value {
                Value::InlineTable(t) => Ok(t as &dyn TableLike),
                other => Err(not_a_table_entry(file, key, index, other.type_name())),
            })
            .collect(),
        Some(item) => Err(not_an_array(file, key, item)),
    }
}

/// [`table_array`] for editing.
pub(crate) fn table_array_mut<'a>(root: &'a mut Table, key: &str, file: &str) -> Result<Vec<&'a mut dyn TableLike>> {
    match root.get_mut(key) {
        None => Ok(Vec::new()),
        Some(Item::ArrayOfTables(tables)) => Ok(tables.iter_mut().map(|t| t as &mut dyn TableLike).collect()),
        Some(Item::Value(Value::Array(values))) => values
            .iter_mut()
            .enumerate()
            .map(|(index, value)| {
                let type_name = value.type_name();
                match value {
                    Value::InlineTable(t) => Ok(t as &mut dyn TableLike),
                    _ => Err(not_a_table_entry(file, key, index, type_name)),
                }
            })
            .collect(),
        Some(item) => Err(not_an_array(file, key, item)),
    }
}

fn not_a_table_entry(file: &str, key: &str, index: usize, type_name: &str) -> anyhow::Error {
    anyhow!(
        "{file}: entry {} of `{key}` is a {type_name}, but each must be a table: write it as a \
         `[[{key}]]` table with `name`, `version` and `vendor`",
        index + 1
    )
}

fn not_an_array(file: &str, key: &str, item: &Item) -> anyhow::Error {
    if let Some(table) = item.as_table_like() {
        match table.iter().next() {
            Some((first, _)) => anyhow!(
                "{file} declares `[{key}.{first}]`, but `{key}` must be an array of tables: write \
                 each entry as its own `[[{key}]]` table with `name = \"{first}\"`, `version` and \
                 `vendor`"
            ),
            None => anyhow!(
                "{file} has a `[{key}]` table, but `{key}` must be an array of tables: write each \
                 entry as its own `[[{key}]]` table with `name`, `version` and `vendor`"
            ),
        }
    } else {
        anyhow!(
            "{file}: `{key}` is a {}, but must be an array of `[[{key}]]` tables",
            item.type_name()
        )
    }
}

/// A string field of a table, or an error naming `what` and the field.
pub(crate) fn required_str(table: &dyn TableLike, key: &str, what: &str) -> Result<String> {
    match table.get(key) {
        None => bail!("{what} has no `{key}`: add `{key} = \"…\"`"),
        Some(item) => item
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{what}: `{key}` is a {} but must be a string", item.type_name())),
    }
}

/// An optional string field of a table; present but not a string is an error.
pub(crate) fn optional_str(table: &dyn TableLike, key: &str, what: &str) -> Result<Option<String>> {
    match table.get(key) {
        None => Ok(None),
        Some(item) => item
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| anyhow!("{what}: `{key}` is a {} but must be a string", item.type_name())),
    }
}

/// A registry address as twoliter uses it (`localhost:5000`, `public.ecr.aws/bottlerocket`).
pub(crate) fn check_registry(registry: &str) -> Result<()> {
    if registry.is_empty() {
        bail!("registry is empty: give a registry such as `localhost:5000`");
    }
    if registry.contains("://") {
        bail!(
            "registry `{registry}` has a URL scheme: give host[:port][/path] only, \
             such as `localhost:5000`"
        );
    }
    if let Some(bad) = registry
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '"')
    {
        bail!("registry `{registry}` contains {bad:?}: give host[:port][/path], such as `localhost:5000`");
    }
    Ok(())
}

/// Adds a child table under `parent` in the style of its siblings: an inline table inside an
/// inline table, a dotted table beside dotted siblings, otherwise a `[parent.child]` header
/// (which toml_edit places right after the last sibling table).
pub(crate) fn insert_child_table(parent: &mut Item, key: &str, mut child: Table) {
    match parent {
        Item::Value(Value::InlineTable(inline)) => {
            // The space before `}` belongs to the last value: hand it on to the new last one.
            let mut value = Value::InlineTable(child.into_inline_table());
            if let Some((_, last)) = inline.iter_mut().last() {
                if let Some(suffix) = last.decor().suffix().cloned() {
                    last.decor_mut().set_suffix("");
                    value.decor_mut().set_suffix(suffix);
                }
            }
            inline.insert(key, value);
        }
        Item::Table(table) => {
            let dotted_siblings = table.is_dotted()
                || table
                    .iter()
                    .any(|(_, item)| item.as_table().is_some_and(Table::is_dotted));
            if dotted_siblings {
                child.set_dotted(true);
            }
            table.insert(key, Item::Table(child));
        }
        _ => unreachable!("insert_child_table is only called on tables"),
    }
}

/// A table holding one string, `key = "value"`.
pub(crate) fn table_with(key: &str, value: &str) -> Table {
    let mut table = Table::new();
    table.insert(key, Item::Value(Value::from(value)));
    table
}

/// A new table only there to hold subtables: `[vendor.local]` without a `[vendor]` header.
pub(crate) fn implicit_table(key: &str, child: Table) -> Table {
    let mut table = Table::new();
    table.set_implicit(true);
    table.insert(key, Item::Table(child));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_files_keep_crlf() {
        let text = "# c\r\n[a]\r\nk = \"x\" # keep\r\n\r\n[b]\r\nj = 1\r\n";
        let mut doc = Doc::parse("F", text).unwrap();
        let a = doc.root().get_mut("a").unwrap().as_table_like_mut().unwrap();
        let changed = set_str_key(a, "k", "y", "a").unwrap();
        doc.mark_changed(changed);
        assert_eq!(doc.render(), "# c\r\n[a]\r\nk = \"y\" # keep\r\n\r\n[b]\r\nj = 1\r\n");
    }

    #[test]
    fn mixed_line_endings_follow_the_majority() {
        let edit = |text: &str| {
            let mut doc = Doc::parse("F", text).unwrap();
            let changed = set_str_key(doc.root(), "b", "z", "F").unwrap();
            doc.mark_changed(changed);
            doc.render()
        };
        assert_eq!(edit("a = 1\r\nb = \"y\"\nc = 2\r\n"), "a = 1\r\nb = \"z\"\r\nc = 2\r\n");
        assert_eq!(edit("a = 1\r\nb = \"y\"\nc = 2\n"), "a = 1\nb = \"z\"\nc = 2\n");
    }

    #[test]
    fn a_file_without_a_final_newline_gets_new_tables_on_their_own_lines() {
        let mut doc = Doc::parse("F", "[a]\nk = 1").unwrap();
        doc.root().insert("b", Item::Table(table_with("r", "x")));
        doc.mark_changed(true);
        assert_eq!(doc.render(), "[a]\nk = 1\n\n[b]\nr = \"x\"\n");
    }

    #[test]
    fn kit_tables_that_are_not_arrays() {
        let mut doc = Doc::parse("F", "[kit]\n").unwrap();
        let err = table_array(doc.root(), "kit", "F").err().unwrap().to_string();
        assert!(err.starts_with("F has a `[kit]` table, but `kit` must be an array of tables"));
        let mut doc = Doc::parse("F", "kit = 1\n").unwrap();
        let err = table_array_mut(doc.root(), "kit", "F").err().unwrap().to_string();
        assert_eq!(err, "F: `kit` is a integer, but must be an array of `[[kit]]` tables");
    }

    #[test]
    fn unchanged_documents_come_back_byte_for_byte() {
        let text = "a   =   'x'  \n\n\n[t]   # t\nb=1";
        let doc = Doc::parse("F", text).unwrap();
        assert_eq!(doc.render(), text);
    }

    #[test]
    fn set_str_keeps_literal_strings_and_comments() {
        let mut doc = Doc::parse("F", "a = 'x' # c\n").unwrap();
        let root = doc.root();
        assert!(!set_str(root.get_mut("a").unwrap(), "x"));
        assert!(set_str(root.get_mut("a").unwrap(), "y"));
        assert_eq!(doc.doc.to_string(), "a = \"y\" # c\n");
    }

    #[test]
    fn registries() {
        check_registry("localhost:5000").unwrap();
        check_registry("public.ecr.aws/bottlerocket").unwrap();
        for (bad, says) in [("", "empty"), ("http://localhost:5000", "scheme"), ("a b", "contains")] {
            let err = check_registry(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
