//! The registry's YAML layer: text (plus `RESEAL_*` environment overrides) to
//! a tree of located nodes, and from that tree to the serde model, with every
//! problem found in one pass.
//!
//! Why not a ready-made loader: the registry must refuse duplicate keys at any
//! depth (a second `card-vault:` block silently replacing the first re-keys a
//! consumer), name the line of every problem and the environment variable of
//! an override, and report every mistake at once. `saphyr-parser` (YAML 1.2,
//! maintained) gives events with positions; this module builds the tree,
//! detects duplicates, resolves scalars by the YAML 1.2 core schema (so
//! `2027-01-31` is text and `0x0578` a number), overlays the environment, and
//! deserializes with a serde `Deserializer` that records where each error is
//! (see [`de`]).
//!
//! Key material can sit inline in the file: scalar text is held in
//! `Zeroizing` strings, and messages quote a value only when it is short,
//! single-line and not PEM (see [`hints::quotable`]).

mod de;
mod hints;

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use zeroize::Zeroizing;

pub use de::deserialize;
pub use hints::suggest;

/// Nodes a document may expand to (aliases included): a guard against alias bombs.
const MAX_NODES: usize = 200_000;

/// Where a node came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in the file (line and column from 1).
    File { line: usize, column: usize },
    /// An environment override, by variable name.
    Env(String),
    /// Nowhere in particular (a problem about the file as a whole).
    Unknown,
}

impl Origin {
    fn at(span: &Span) -> Origin {
        Origin::File {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            Origin::File { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub fn is_env(&self) -> bool {
        matches!(self, Origin::Env(_))
    }
}

/// One problem, located: the file and line (or the environment variable), the
/// dotted path of the entry and field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file (or "embedded default config").
    pub origin: String,
    #[serde(serialize_with = "ser_line")]
    pub line: Origin,
    /// `sources.connect-a.decrypt_until`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

fn ser_line<S: serde::Serializer>(o: &Origin, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    match o {
        Origin::File { line, column } => {
            m.serialize_entry("line", line)?;
            m.serialize_entry("column", column)?;
        }
        Origin::Env(var) => m.serialize_entry("environment_variable", var)?,
        Origin::Unknown => {}
    }
    m.end()
}

impl Problem {
    pub fn new(
        origin: &str,
        at: Origin,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            origin: origin.to_owned(),
            line: at,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.line {
            Origin::File { line, column } => write!(f, "{}:{line}:{column}: ", self.origin)?,
            Origin::Env(var) => write!(f, "environment variable {var}: ")?,
            Origin::Unknown => write!(f, "{}: ", self.origin)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// How a scalar was written, which decides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: typed by the YAML 1.2 core schema (null, bool, int, float, else text).
    Plain,
    /// Quoted or a block scalar (`|`, `>`): always text.
    Text,
    /// The value of an environment variable: text that becomes whatever the field needs.
    Env,
}

#[derive(Clone)]
pub struct Scalar {
    pub text: Zeroizing<String>,
    pub style: Style,
}

/// A map key and where it is written.
#[derive(Clone)]
pub struct Key {
    pub text: String,
    pub origin: Origin,
}

#[derive(Clone)]
pub struct Entry {
    pub key: Key,
    pub value: Node,
}

#[derive(Clone)]
pub enum Value {
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

impl Node {
    fn new(value: Value, origin: Origin) -> Self {
        Node { value, origin }
    }

    fn empty_map() -> Self {
        Node::new(Value::Map(Vec::new()), Origin::Unknown)
    }

    /// The entries of a map node (none for anything else).
    pub fn entries(&self) -> &[Entry] {
        match &self.value {
            Value::Map(e) => e,
            _ => &[],
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|e| e.key.text == key)
            .map(|e| &e.value)
    }
}

/// A parsed file with its environment overrides: the tree, the problems found
/// so far, and an index from dotted paths to where they are written.
pub struct Document {
    pub origin: String,
    pub root: Node,
    pub problems: Vec<Problem>,
    /// Paths whose content is broken: later problems under them are consequences.
    broken: Vec<String>,
    index: HashMap<String, Origin>,
}

impl Document {
    /// Parses `text`. Syntax errors, duplicate keys and unsupported YAML land in
    /// `problems`; the tree holds whatever could be read.
    pub fn parse(text: &str, origin: &str) -> Document {
        let mut doc = Document {
            origin: origin.to_owned(),
            root: Node::empty_map(),
            problems: Vec::new(),
            broken: Vec::new(),
            index: HashMap::new(),
        };
        let mut b = TreeBuilder {
            doc: &mut doc,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            documents: 0,
            root: None,
        };
        let mut parser = Parser::new_from_str(text);
        let mut failed = false;
        loop {
            match parser.next_event() {
                None => break,
                Some(Ok((event, span))) => {
                    if !b.event(event, span) {
                        failed = true;
                        break;
                    }
                }
                Some(Err(e)) => {
                    let at = Origin::File {
                        line: e.marker().line(),
                        column: e.marker().col() + 1,
                    };
                    b.syntax_error(text, at, e.info());
                    failed = true;
                    break;
                }
            }
        }
        let root = b.root.take();
        match root {
            Some(root) if !failed => match root.value {
                Value::Map(_) => doc.root = root,
                Value::Null => {}
                _ => {
                    let at = root.origin.clone();
                    doc.problem(
                        at,
                        "",
                        "the file must be a mapping of sections (`sources:`, `consumers:`, ...), \
                         not a single value or a list",
                    );
                }
            },
            _ => {}
        }
        doc.reindex();
        doc
    }

    /// Applies `RESEAL_<SECTION>__<KEY>...=value` overrides over the file, as
    /// figment's environment provider did: names are lowercased and split at
    /// `__`; a value starting with `[` or `{` is read as YAML flow; maps are
    /// merged, anything else replaced.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix("RESEAL_")
                    .is_some_and(|rest| rest.contains("__"))
            })
            .collect();
        vars.sort();
        for (name, value) in vars {
            let rest = &name["RESEAL_".len()..];
            let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let origin = Origin::Env(name.clone());
            if segments.iter().any(|s| s.is_empty()) {
                self.problem(
                    origin,
                    "",
                    "an empty name part (`___` or a trailing `__`): write RESEAL_<SECTION>__<KEY>, \
                     e.g. RESEAL_SERVER__LISTEN",
                );
                continue;
            }
            let node = match env_value(&value, &origin) {
                Ok(node) => node,
                Err(msg) => {
                    self.problem(origin, segments.join("."), msg);
                    continue;
                }
            };
            set_path(&mut self.root, &segments, node, &origin);
        }
        self.reindex();
    }

    pub fn problem(&mut self, at: Origin, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.problems
            .push(Problem::new(&self.origin, at, path, message));
    }

    /// Marks a path as broken: problems found later under it are consequences.
    pub fn mark_broken(&mut self, path: &str) {
        self.broken.push(path.to_owned());
    }

    /// Whether a problem at `path` follows from one already reported.
    pub fn is_consequence(&self, path: &str) -> bool {
        self.broken.iter().any(|b| {
            b.is_empty()
                || path == b
                || path
                    .strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }

    /// Where a dotted path is written: the path itself, else its nearest
    /// written ancestor (a missing field is reported on its entry's line).
    pub fn locate(&self, path: &str) -> Origin {
        let mut p = path;
        loop {
            if let Some(o) = self.index.get(p) {
                return o.clone();
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return Origin::Unknown,
            }
        }
    }

    /// Whether the map at `path` has entries as written (some may have failed
    /// to deserialize): "at least one is required" is then not news.
    pub fn has_entries(&self, path: &str) -> bool {
        let prefix = format!("{path}.");
        self.index.keys().any(|k| k.starts_with(&prefix))
    }

    /// Keys of a top-level section as written (including entries that failed
    /// to deserialize), so references to a broken entry are not also reported
    /// as references to a missing one.
    pub fn section_keys(&self, section: &str) -> Vec<String> {
        self.root
            .get(section)
            .map(|n| n.entries().iter().map(|e| e.key.text.clone()).collect())
            .unwrap_or_default()
    }

    fn reindex(&mut self) {
        let mut index = HashMap::new();
        index_node(&self.root, "", &mut index);
        self.index = index;
    }
}

fn index_node(node: &Node, path: &str, index: &mut HashMap<String, Origin>) {
    match &node.value {
        Value::Map(entries) => {
            for e in entries {
                let p = join(path, &e.key.text);
                let at = if e.value.origin.is_env() {
                    e.value.origin.clone()
                } else {
                    e.key.origin.clone()
                };
                index.insert(p.clone(), at);
                index_node(&e.value, &p, index);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                index.insert(p.clone(), item.origin.clone());
                index_node(item, &p, index);
            }
        }
        _ => {}
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An environment value as a node: YAML flow for lists and maps, else text.
fn env_value(value: &str, origin: &Origin) -> Result<Node, String> {
    let t = value.trim_start();
    if t.starts_with('[') || t.starts_with('{') {
        let mut node = flow_root(value).map_err(|e| {
            format!("the value is not a valid YAML list or mapping ({e}); write e.g. `[a, b]` or `{{k: v}}`")
        })?;
        relocate(&mut node, origin);
        return Ok(node);
    }
    Ok(Node::new(
        Value::Scalar(Scalar {
            text: Zeroizing::new(value.to_owned()),
            style: Style::Env,
        }),
        origin.clone(),
    ))
}

/// The root node of a flow value (a list or a map), read on its own.
fn flow_root(text: &str) -> Result<Node, String> {
    let mut doc = Document {
        origin: String::new(),
        root: Node::empty_map(),
        problems: Vec::new(),
        broken: Vec::new(),
        index: HashMap::new(),
    };
    let mut b = TreeBuilder {
        doc: &mut doc,
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        documents: 0,
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_event() {
            None => break,
            Some(Ok((event, span))) => {
                if !b.event(event, span) {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.info().to_owned()),
        }
    }
    let root = b.root.take();
    match (doc.problems.first(), root) {
        (Some(p), _) => Err(p.message.clone()),
        (None, Some(root)) => Ok(root),
        (None, None) => Err("no value".into()),
    }
}

/// Every node of an environment value is located at its variable.
fn relocate(node: &mut Node, origin: &Origin) {
    node.origin = origin.clone();
    match &mut node.value {
        Value::Map(entries) => {
            for e in entries {
                e.key.origin = origin.clone();
                relocate(&mut e.value, origin);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| relocate(i, origin)),
        Value::Scalar(s) => {
            if s.style == Style::Plain {
                // Typed as the field needs, like any environment value.
                s.style = Style::Env;
            }
        }
        Value::Null => {}
    }
}

/// Sets `segments` under `node` to `value`, creating maps on the way.
fn set_path(node: &mut Node, segments: &[String], value: Node, origin: &Origin) {
    let Some((first, rest)) = segments.split_first() else {
        // Merge maps; replace anything else.
        match (&mut node.value, value.value) {
            (Value::Map(mine), Value::Map(theirs)) => {
                for e in theirs {
                    set_path(
                        node_mut_map(mine, &e.key.text, origin),
                        &[],
                        e.value,
                        origin,
                    );
                }
            }
            (slot, v) => {
                *slot = v;
                node.origin = value.origin;
            }
        }
        return;
    };
    if !matches!(node.value, Value::Map(_)) {
        node.value = Value::Map(Vec::new());
        node.origin = origin.clone();
    }
    if let Value::Map(entries) = &mut node.value {
        set_path(node_mut_map(entries, first, origin), rest, value, origin);
    }
}

/// The entry for `key` (matching `-` and `_` alike when that is unambiguous,
/// since environment names cannot hold `-`), created when absent.
fn node_mut_map<'a>(entries: &'a mut Vec<Entry>, key: &str, origin: &Origin) -> &'a mut Node {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let exact = entries.iter().position(|e| e.key.text == key);
    let loose: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| norm(&e.key.text) == norm(key))
        .map(|(i, _)| i)
        .collect();
    let at = match (exact, loose.as_slice()) {
        (Some(i), _) => i,
        (None, [i]) => *i,
        _ => {
            entries.push(Entry {
                key: Key {
                    text: key.to_owned(),
                    origin: origin.clone(),
                },
                value: Node::new(Value::Null, origin.clone()),
            });
            entries.len() - 1
        }
    };
    &mut entries[at].value
}

enum Frame {
    Seq {
        items: Vec<Node>,
        origin: Origin,
        anchor: usize,
    },
    Map {
        entries: Vec<Entry>,
        origin: Origin,
        anchor: usize,
        /// A key read, waiting for its value.
        key: Option<Key>,
        /// Where each key was first written (duplicates).
        seen: HashMap<String, Origin>,
        /// The path of this map, for messages.
        path: String,
    },
}

struct TreeBuilder<'d> {
    doc: &'d mut Document,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
}

impl TreeBuilder<'_> {
    fn current_path(&self) -> String {
        match self.stack.last() {
            Some(Frame::Map { path, key, .. }) => match key {
                Some(k) => join(path, &k.text),
                None => path.clone(),
            },
            Some(Frame::Seq { items, .. }) => {
                let parent = self
                    .stack
                    .len()
                    .checked_sub(2)
                    .and_then(|i| match &self.stack[i] {
                        Frame::Map {
                            path, key: Some(k), ..
                        } => Some(join(path, &k.text)),
                        Frame::Map { path, .. } => Some(path.clone()),
                        Frame::Seq { .. } => None,
                    });
                format!("{}[{}]", parent.unwrap_or_default(), items.len())
            }
            None => String::new(),
        }
    }

    /// Handles one parser event; false stops the parse.
    fn event(&mut self, event: Event<'_>, span: Span) -> bool {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            let at = Origin::at(&span);
            self.doc.problem(
                at,
                "",
                format!(
                    "the file expands to more than {MAX_NODES} values (aliases?); it is refused"
                ),
            );
            return false;
        }
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => true,
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    let at = Origin::at(&span);
                    self.doc.problem(
                        at,
                        "",
                        "a second YAML document (`---`): the registry is one document; remove the separator",
                    );
                    return false;
                }
                true
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    self.nodes += count(&node);
                    self.push(node, &span)
                }
                None => {
                    let at = Origin::at(&span);
                    self.doc.problem(
                        at,
                        self.current_path(),
                        "an alias (`*name`) to an unknown anchor",
                    );
                    false
                }
            },
            Event::Scalar(text, style, anchor, tag) => {
                let origin = Origin::at(&span);
                let forced_text = match tag.as_deref() {
                    None => false,
                    Some(t) if t.handle == "tag:yaml.org,2002:" || t.handle == "!!" => {
                        if t.suffix == "str" {
                            true
                        } else {
                            self.doc.problem(
                                origin.clone(),
                                self.current_path(),
                                format!(
                                    "the tag `!!{}` is not supported; write the value without it",
                                    t.suffix
                                ),
                            );
                            false
                        }
                    }
                    Some(t) => {
                        self.doc.problem(
                            origin.clone(),
                            self.current_path(),
                            format!(
                                "YAML tags such as `{}{}` are not supported in the registry; write a plain value",
                                t.handle, t.suffix
                            ),
                        );
                        false
                    }
                };
                let style = match style {
                    ScalarStyle::Plain if !forced_text => Style::Plain,
                    _ => Style::Text,
                };
                let value = if style == Style::Plain && hints::is_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar(Scalar {
                        text: Zeroizing::new(text.into_owned()),
                        style,
                    })
                };
                let node = Node::new(value, origin);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node, &span)
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    origin: Origin::at(&span),
                    anchor,
                });
                true
            }
            Event::MappingStart(anchor, _) => {
                let path = self.current_path();
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    origin: Origin::at(&span),
                    anchor,
                    key: None,
                    seen: HashMap::new(),
                    path,
                });
                true
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        origin,
                        anchor,
                    }) => {
                        let node = Node::new(Value::Seq(items), origin);
                        (node, anchor)
                    }
                    Some(Frame::Map {
                        entries,
                        origin,
                        anchor,
                        ..
                    }) => (Node::new(Value::Map(entries), origin), anchor),
                    None => return true,
                };
                let (node, anchor) = node;
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node, &span)
            }
        }
    }

    /// Places a finished node: as a key or value of the map being read, an
    /// item of the list, or the document root.
    fn push(&mut self, node: Node, span: &Span) -> bool {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                true
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                true
            }
            Some(Frame::Map {
                entries,
                key,
                seen,
                path,
                ..
            }) => match key.take() {
                None => {
                    let text = match node.value {
                        Value::Scalar(s) => s.text.to_string(),
                        Value::Null => "null".into(),
                        _ => {
                            let at = Origin::at(span);
                            self.doc.problem(
                                at,
                                path.clone(),
                                "a list or mapping used as a key: keys are plain names",
                            );
                            return false;
                        }
                    };
                    *key = Some(Key {
                        text,
                        origin: node.origin,
                    });
                    true
                }
                Some(k) => {
                    if let Some(first) = seen.get(&k.text) {
                        let entry = join(path, &k.text);
                        let first_line = first.line().unwrap_or(0);
                        let message = format!(
                            "duplicate key `{}`: already defined at line {first_line}; a second definition \
                             would silently replace the first, so the file is refused (keep one)",
                            k.text
                        );
                        let at = k.origin.clone();
                        self.doc
                            .problems
                            .push(Problem::new(&self.doc.origin, at, entry, message));
                        // The first definition is kept (and checked); the second is dropped.
                        return true;
                    }
                    seen.insert(k.text.clone(), k.origin.clone());
                    entries.push(Entry {
                        key: k,
                        value: node,
                    });
                    true
                }
            },
        }
    }

    fn syntax_error(&mut self, text: &str, at: Origin, info: &str) {
        // (No entry path: where the parser stopped is not where the mistake is.)
        let path = String::new();
        if info.contains("tab") {
            // Report every line indented with a tab, not only the first one.
            let lines: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| {
                    l.chars()
                        .take_while(|c| c.is_whitespace())
                        .any(|c| c == '\t')
                })
                .map(|(i, _)| i + 1)
                .collect();
            if lines.is_empty() {
                self.doc.problem(at, path, hints::syntax(info));
            } else {
                for line in lines {
                    self.doc.problem(
                        Origin::File { line, column: 1 },
                        "",
                        "tabs are not allowed in YAML indentation: indent with spaces",
                    );
                }
            }
        } else {
            let mut message = hints::syntax(info);
            if let Some((bracket, line)) = self.open_flow(text) {
                if at.line() != Some(line) {
                    message =
                        format!("{message}; the `{bracket}` opened at line {line} is not closed");
                }
            }
            self.doc.problem(at, path, message);
        }
        self.doc.broken.push(String::new());
    }

    /// The innermost `[` or `{` still open, and its line.
    fn open_flow(&self, text: &str) -> Option<(char, usize)> {
        self.stack.iter().rev().find_map(|f| {
            let origin = match f {
                Frame::Seq { origin, .. } | Frame::Map { origin, .. } => origin,
            };
            let Origin::File { line, column } = origin else {
                return None;
            };
            let c = text
                .lines()
                .nth(line.checked_sub(1)?)?
                .chars()
                .nth(column.checked_sub(1)?)?;
            matches!(c, '[' | '{').then_some((c, *line))
        })
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Map(e) => 1 + e.iter().map(|e| 1 + count(&e.value)).sum::<usize>(),
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth_with_both_lines() {
        let doc = Document::parse(
            "consumers:\n  a:\n    suite: x\n    suite: y\n  a: {}\nroutes: {}\nroutes: {}\n",
            "f.yaml",
        );
        let p: Vec<String> = doc.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(
            p[0].starts_with(
                "f.yaml:4:5: consumers.a.suite: duplicate key `suite`: already defined at line 3"
            ),
            "{p:#?}"
        );
        assert!(
            p[1].starts_with(
                "f.yaml:5:3: consumers.a: duplicate key `a`: already defined at line 2"
            ),
            "{p:#?}"
        );
        assert!(
            p[2].starts_with(
                "f.yaml:7:1: routes: duplicate key `routes`: already defined at line 6"
            ),
            "{p:#?}"
        );
    }

    #[test]
    fn every_tab_indented_line_is_named() {
        let doc = Document::parse("server:\n\tlisten: x\n\tadmin_listen: y\n", "f.yaml");
        let p: Vec<String> = doc.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            p,
            [
                "f.yaml:2:1: tabs are not allowed in YAML indentation: indent with spaces",
                "f.yaml:3:1: tabs are not allowed in YAML indentation: indent with spaces"
            ]
        );
    }

    #[test]
    fn environment_overrides_merge_and_are_located_at_their_variable() {
        let mut doc = Document::parse(
            "server:\n  listen: a\nroutes:\n  card-capture: [x]\n",
            "f.yaml",
        );
        doc.apply_env([
            ("RESEAL_SERVER__LISTN".to_owned(), "b".to_owned()),
            (
                "RESEAL_ROUTES__CARD_CAPTURE".to_owned(),
                "[y, z]".to_owned(),
            ),
            ("RESEAL_CONFIG".to_owned(), "ignored".to_owned()),
        ]);
        assert!(doc.problems.is_empty());
        assert_eq!(doc.locate("server.listen").line(), Some(2));
        assert_eq!(
            doc.locate("server.listn"),
            Origin::Env("RESEAL_SERVER__LISTN".into())
        );
        // `card_capture` in a variable name reaches the `card-capture` entry.
        assert_eq!(
            doc.locate("routes.card-capture"),
            Origin::Env("RESEAL_ROUTES__CARD_CAPTURE".into())
        );
        assert_eq!(doc.root.get("routes").unwrap().entries().len(), 1);
    }

    #[test]
    fn a_list_root_and_a_second_document_are_refused() {
        assert!(Document::parse("- a\n", "f").problems[0]
            .message
            .contains("mapping of sections"));
        assert!(Document::parse("a: 1\n---\nb: 2\n", "f").problems[0]
            .message
            .contains("second YAML document"));
        assert!(Document::parse("", "f").problems.is_empty());
    }
}
