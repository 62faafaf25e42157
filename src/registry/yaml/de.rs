//! A serde `Deserializer` over the located tree that reports *every* problem.
//!
//! Derived `Deserialize` impls stop at their first error. So the tree is
//! deserialized again after each error, with the node that failed left out
//! (as if it were not written): an optional or defaulted field then takes its
//! default, a required one makes its entry fail in turn (reported only once:
//! a "missing field" for a field that was left out is a consequence, not a new
//! problem). Each error carries the node it happened at (the innermost node's
//! wrapper claims it), so it names the file and line, or the environment
//! variable, and the dotted path of the entry and field.

use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

use super::hints::{self, Resolved};
use super::{join, Document, Entry, Node, Origin, Problem, Scalar, Style, Value};

/// Nodes left out after an error, and the (map, field) pairs that leaves empty.
#[derive(Default)]
struct State {
    skipped: HashSet<usize>,
    left_out: HashSet<(usize, String)>,
}

#[derive(Debug, Clone)]
struct At {
    /// Address of the node (or map entry) the error is about.
    id: usize,
    path: String,
    origin: Origin,
    /// The map holding this node, and its key there.
    parent: Option<(usize, String)>,
}

#[derive(Debug, Clone)]
enum Kind {
    Missing(String),
    InvalidType(String),
    /// With the nearest valid name, when there is one.
    UnknownField(Option<String>),
    Other,
}

/// A deserialization error and (once claimed) where it happened.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
pub struct Inner {
    message: String,
    kind: Kind,
    at: Option<At>,
}

impl std::ops::Deref for Error {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::ops::DerefMut for Error {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    fn new(message: impl Into<String>, kind: Kind) -> Self {
        Error(Box::new(Inner {
            message: message.into(),
            kind,
            at: None,
        }))
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::new(msg.to_string(), Kind::Other)
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let exp = exp.to_string();
        let mut message = format!(
            "expected {}, found {}",
            hints::expected(&exp),
            hints::found(&unexp)
        );
        if let Some(h) = hints::hint(&exp, &unexp) {
            message = format!("{message}; {h}");
        }
        Error::new(message, Kind::InvalidType(exp))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let exp = exp.to_string();
        let what = match &unexp {
            Unexpected::Str(s) if hints::quotable(s) => format!("`{s}`"),
            other => hints::found(other),
        };
        let mut message = format!("{what} is not {}", hints::expected(&exp));
        if let Some(h) = hints::hint(&exp, &unexp) {
            message = format!("{message}; {h}");
        }
        Error::new(message, Kind::Other)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut message = if field == "<<" {
            "merge keys (`<<: *anchor`) are not supported: write the fields out".to_owned()
        } else {
            format!("unknown field `{field}`")
        };
        let suggestion = hints::suggest(field, expected);
        if let Some(s) = suggestion {
            message = format!("{message}; did you mean `{s}`?");
        }
        message = format!("{message} (valid here: {})", hints::list(expected));
        Error::new(message, Kind::UnknownField(suggestion.map(str::to_owned)))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let shown = if hints::quotable(variant) {
            format!("`{variant}`")
        } else {
            "the value".into()
        };
        let mut message = format!("{shown} is not one of {}", hints::list(expected));
        if let Some(s) = hints::suggest(variant, expected) {
            message = format!("{message}; did you mean `{s}`?");
        }
        Error::new(message, Kind::Other)
    }

    fn missing_field(field: &'static str) -> Self {
        Error::new(
            format!("missing field `{field}` (required here)"),
            Kind::Missing(field.to_owned()),
        )
    }

    fn duplicate_field(field: &'static str) -> Self {
        Error::new(format!("the field `{field}` is given twice"), Kind::Other)
    }
}

/// Deserializes the document's tree as `T`, recording every problem in the
/// document. `None` when the root itself is unusable.
pub fn deserialize<T: DeserializeOwned>(doc: &mut Document) -> Option<T> {
    let mut state = State::default();
    let root_id = &doc.root as *const Node as usize;
    loop {
        let result = {
            let de = De {
                node: &doc.root,
                path: String::new(),
                key_origin: None,
                parent: None,
                state: &state,
            };
            de.claim(T::deserialize(de.clone()))
        };
        let err = match result {
            Ok(v) => return Some(v),
            Err(e) => *e.0,
        };
        let Some(at) = err.at else {
            doc.problem(Origin::Unknown, "", err.message);
            return None;
        };
        let consequence = match &err.kind {
            Kind::Missing(field) => state.left_out.contains(&(at.id, field.clone())),
            _ => false,
        } || doc.is_consequence(&at.path);
        if !consequence {
            let message = match (&err.kind, at.path.contains(['.', '['])) {
                // At the top level, fields are the file's sections.
                (Kind::UnknownField(_), false) => err
                    .message
                    .replacen("unknown field", "unknown section", 1)
                    .replacen("valid here", "the sections are", 1),
                _ => err.message,
            };
            doc.problems.push(Problem::new(
                &doc.origin,
                at.origin.clone(),
                at.path.clone(),
                message,
            ));
        }
        doc.mark_broken(&at.path);
        if let Kind::UnknownField(Some(meant)) = &err.kind {
            // `privte_key` was meant as `private_key`: "private_key is
            // required" would only repeat the suggestion.
            let parent = at.path.rsplit_once('.').map_or("", |(p, _)| p);
            doc.mark_broken(&join(parent, meant));
        }
        if at.id == root_id || !state.skipped.insert(at.id) {
            return None;
        }
        if let Some(parent) = at.parent {
            state.left_out.insert(parent);
        }
    }
}

#[derive(Clone)]
struct De<'a> {
    node: &'a Node,
    path: String,
    /// Where the key holding this node is written (its entry's line).
    key_origin: Option<&'a Origin>,
    parent: Option<(usize, &'a str)>,
    state: &'a State,
}

fn id_of<T>(x: &T) -> usize {
    x as *const T as usize
}

impl<'a> De<'a> {
    fn at(&self) -> At {
        let origin = match (&self.node.value, self.key_origin) {
            _ if self.node.origin.is_env() => self.node.origin.clone(),
            (Value::Scalar(_), _) => self.node.origin.clone(),
            (_, Some(k)) => k.clone(),
            (_, None) => self.node.origin.clone(),
        };
        At {
            id: id_of(self.node),
            path: self.path.clone(),
            origin,
            parent: self.parent.map(|(m, k)| (m, k.to_owned())),
        }
    }

    /// Claims an error that no inner node claimed, and adds what this node
    /// knows (how a scalar was written).
    fn claim<T>(&self, r: Result<T, Error>) -> Result<T, Error> {
        r.map_err(|mut e| {
            if e.at.is_none() {
                e.at = Some(self.at());
                if let (Kind::InvalidType(exp), Value::Scalar(s)) = (&e.kind, &self.node.value) {
                    if let Some(h) = written_hint(exp, s) {
                        e.message = format!("{}; {h}", e.message);
                    }
                }
            }
            e
        })
    }

    fn child(
        &self,
        node: &'a Node,
        path: String,
        key: Option<(&'a Origin, usize, &'a str)>,
    ) -> De<'a> {
        De {
            node,
            path,
            key_origin: key.map(|(o, _, _)| o),
            parent: key.map(|(_, m, k)| (m, k)),
            state: self.state,
        }
    }

    fn scalar(&self) -> Option<&'a Scalar> {
        match &self.node.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// A hint from how the value was written: quotes for text that YAML typed as
/// something else, no quotes for a number or boolean written as text.
fn written_hint(expected: &str, s: &Scalar) -> Option<String> {
    let text: &str = &s.text;
    match s.style {
        Style::Plain if expected == "a string" => match hints::resolve(text) {
            Resolved::Text | Resolved::Null => None,
            _ if hints::quotable(text) => Some(format!(
                "YAML reads `{text}` as a number or boolean: quote it to keep it as text: \"{text}\""
            )),
            _ => Some("quote the value to keep it as text".into()),
        },
        Style::Text
            if matches!(hints::expected(expected).as_str(), e if e.contains("number"))
                && matches!(
                    hints::resolve(text),
                    Resolved::Unsigned(_) | Resolved::Signed(_) | Resolved::Float(_)
                ) =>
        {
            Some("remove the quotes: it is a number".into())
        }
        Style::Text if expected == "a boolean" && matches!(hints::resolve(text), Resolved::Bool(_)) => {
            Some("remove the quotes: it is a boolean".into())
        }
        _ => None,
    }
}

/// What a node is, for a type error raised here.
fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.value {
        Value::Null => Unexpected::Unit,
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
        Value::Scalar(s) if s.style == Style::Plain => match hints::resolve(&s.text) {
            Resolved::Null => Unexpected::Unit,
            Resolved::Bool(b) => Unexpected::Bool(b),
            Resolved::Unsigned(n) => Unexpected::Unsigned(n),
            Resolved::Signed(n) => Unexpected::Signed(n),
            Resolved::Float(f) => Unexpected::Float(f),
            Resolved::Text => Unexpected::Str(&s.text),
        },
        Value::Scalar(s) => Unexpected::Str(&s.text),
    }
}

fn visit_resolved<'de, V: Visitor<'de>>(text: &str, visitor: V) -> Result<V::Value, Error> {
    match hints::resolve(text) {
        Resolved::Null => visitor.visit_unit(),
        Resolved::Bool(b) => visitor.visit_bool(b),
        Resolved::Unsigned(n) => visitor.visit_u64(n),
        Resolved::Signed(n) => visitor.visit_i64(n),
        Resolved::Float(f) => visitor.visit_f64(f),
        Resolved::Text => visitor.visit_str(text),
    }
}

macro_rules! typed {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.clone().claim(self.typed(visitor))
        }
    )*};
}

impl<'a> De<'a> {
    /// Numbers and booleans: an environment value becomes what the field needs.
    fn typed<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) if s.style == Style::Env => visit_resolved(s.text.trim(), visitor),
            _ => self.any(visitor),
        }
    }

    fn any<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Scalar(s) => match s.style {
                Style::Text => visitor.visit_str(&s.text),
                Style::Plain | Style::Env => visit_resolved(&s.text, visitor),
            },
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                de: self.clone(),
            }),
            Value::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                pending: None,
                de: self.clone(),
            }),
        }
    }

    fn text<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) if s.style != Style::Plain => visitor.visit_str(&s.text),
            _ => self.any(visitor),
        }
    }
}

impl<'de, 'a> de::Deserializer<'de> for De<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    typed!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64
    );

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.text(visitor))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.text(visitor))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.text(visitor))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.text(visitor))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let me = self.clone();
        me.claim(match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        })
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.clone().claim(visitor.visit_newtype_struct(self))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.clone().claim(self.any(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let me = self.clone();
        me.claim(match &self.node.value {
            Value::Map(_) => self.any(visitor),
            // A derived struct visitor would read a list positionally: refuse it here.
            _ => Err(de::Error::invalid_type(
                unexpected(self.node),
                &format!("struct {name}").as_str(),
            )),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let me = self.clone();
        let result = match self.scalar() {
            Some(s) if s.style != Style::Plain || hints::resolve(&s.text) == Resolved::Text => {
                visitor.visit_enum(Variant { name: &s.text })
            }
            _ => {
                let found = match &self.node.value {
                    Value::Null => "an empty value".to_owned(),
                    Value::Seq(_) => "a list".to_owned(),
                    Value::Map(_) => "a mapping".to_owned(),
                    Value::Scalar(s) if hints::quotable(&s.text) => format!("`{}`", &*s.text),
                    Value::Scalar(_) => "a value".to_owned(),
                };
                Err(Error::new(
                    format!("expected one of {}, found {found}", hints::list(variants)),
                    Kind::Other,
                ))
            }
        };
        me.claim(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

struct Seq<'a, I> {
    items: I,
    de: De<'a>,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for Seq<'a, I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        for (i, item) in self.items.by_ref() {
            if self.de.state.skipped.contains(&id_of(item)) {
                continue;
            }
            let child = self.de.child(item, format!("{}[{i}]", self.de.path), None);
            return child.claim(seed.deserialize(child.clone())).map(Some);
        }
        Ok(None)
    }
}

struct Map<'a, I> {
    entries: I,
    pending: Option<&'a Entry>,
    de: De<'a>,
}

impl<'de, 'a, I: Iterator<Item = &'a Entry>> MapAccess<'de> for Map<'a, I> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        for entry in self.entries.by_ref() {
            let skipped = &self.de.state.skipped;
            if skipped.contains(&id_of(entry)) || skipped.contains(&id_of(&entry.value)) {
                continue;
            }
            self.pending = Some(entry);
            let key = KeyDe {
                entry,
                path: join(&self.de.path, &entry.key.text),
            };
            let at = key.at();
            return seed.deserialize(key).map(Some).map_err(|mut e| {
                e.at.get_or_insert(at);
                e
            });
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let entry = self
            .pending
            .take()
            .ok_or_else(|| Error::new("a value without its key", Kind::Other))?;
        let child = self.de.child(
            &entry.value,
            join(&self.de.path, &entry.key.text),
            Some((&entry.key.origin, id_of(self.de.node), &entry.key.text)),
        );
        child.claim(seed.deserialize(child.clone()))
    }
}

/// A map key: always its text.
struct KeyDe<'a> {
    entry: &'a Entry,
    path: String,
}

impl KeyDe<'_> {
    fn at(&self) -> At {
        At {
            id: id_of(self.entry),
            path: self.path.clone(),
            origin: self.entry.key.origin.clone(),
            parent: None,
        }
    }
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(&self.entry.key.text)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// An enum written as its variant's name (every enum of the model has unit variants).
struct Variant<'a> {
    name: &'a str,
}

impl<'de> EnumAccess<'de> for Variant<'_> {
    type Error = Error;
    type Variant = UnitOnly;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, UnitOnly), Error> {
        seed.deserialize(Name(self.name)).map(|v| (v, UnitOnly))
    }
}

struct Name<'a>(&'a str);

impl<'de> de::Deserializer<'de> for Name<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct UnitOnly;

impl<'de> VariantAccess<'de> for UnitOnly {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(Error::new(
            "expected a name, not a name with a value",
            Kind::Other,
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::new(
            "expected a name, not a name with values",
            Kind::Other,
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(Error::new(
            "expected a name, not a name with fields",
            Kind::Other,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[serde(rename = "type")]
        kind: Kind2,
        suite: Option<String>,
        #[serde(default, with = "humantime_serde::option")]
        wait: Option<Duration>,
        #[serde(default)]
        flag: bool,
        count: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Kind2 {
        RawRsa,
        RawAes,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Top {
        items: BTreeMap<String, Item>,
        names: Vec<String>,
    }

    fn run(text: &str) -> (Option<Top>, Vec<String>) {
        let mut doc = Document::parse(text, "t.yaml");
        let top = deserialize::<Top>(&mut doc);
        (top, doc.problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_path() {
        let (top, p) = run(concat!(
            "items:\n",
            "  a:\n",
            "    type: raw_rsa\n",
            "    suite: 0x0578\n",
            "    wait: 300\n",
            "  b:\n",
            "    type: raw-aes\n",
            "    wiat: 5m\n",
            "    flag: yes\n",
            "    count: \"3\"\n",
            "names: one\n",
            "colour: blue\n",
        ));
        let top = top.expect("the rest still deserializes");
        // `a` lost its `type` and is left out; `b` is whole without its broken fields.
        assert_eq!(top.items.keys().collect::<Vec<_>>(), ["b"]);
        let want = [
            "t.yaml:3:11: items.a.type: `raw_rsa` is not one of `raw-rsa`, `raw-aes`; did you mean `raw-rsa`?",
            "t.yaml:4:12: items.a.suite: expected a string, found the number 1400; YAML reads `0x0578` as a number or boolean: quote it to keep it as text: \"0x0578\"",
            "t.yaml:5:11: items.a.wait: expected a duration such as `45d`, `5m`, `300s` or `250ms`, found the number 300; a bare number has no unit: write `300s`",
            "t.yaml:8:5: items.b.wiat: unknown field `wiat`; did you mean `wait`?",
            "t.yaml:9:11: items.b.flag: expected `true` or `false`, found the text `yes`; YAML 1.2 reads `yes` as text: write `true`",
            "t.yaml:10:12: items.b.count: expected a whole number (0 or more), found the text `3`; remove the quotes: it is a number",
            "t.yaml:11:8: names: expected a list (`[a, b]`, or one `- item` per line), found the text `one`; write a list, e.g. `[one]`",
            "t.yaml:12:1: colour: unknown section `colour` (the sections are: `items`, `names`)",
        ];
        for w in want {
            assert!(
                p.iter().any(|l| l.starts_with(w)),
                "missing\n  {w}\nin\n  {}",
                p.join("\n  ")
            );
        }
        // "missing field `type`" of `a` is a consequence, not a second problem.
        assert_eq!(p.len(), want.len(), "{}", p.join("\n"));
    }

    #[test]
    fn a_missing_required_field_names_its_entry() {
        let (_, p) = run("items:\n  a:\n    suite: \"0x0478\"\n");
        assert_eq!(
            p,
            ["t.yaml:2:3: items.a: missing field `type` (required here)"]
        );
    }

    #[test]
    fn nulls_and_wrong_shapes() {
        let (_, p) = run("items:\n  a:\n  b: [x]\n  c: 3\n");
        assert!(p[0].starts_with("t.yaml:2:3: items.a: expected a mapping of fields (`field: value` lines), found an empty value; the value is empty"), "{p:?}");
        assert!(p[1].starts_with("t.yaml:3:3: items.b: expected a mapping of fields (`field: value` lines), found a list"), "{p:?}");
        assert!(
            p[2].starts_with("t.yaml:4:6: items.c: expected a mapping of fields"),
            "{p:?}"
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn environment_values_take_the_type_of_the_field() {
        let mut doc = Document::parse("items:\n  a: {type: raw-rsa}\n", "t.yaml");
        doc.apply_env([
            ("RESEAL_ITEMS__A__COUNT".to_owned(), "7".to_owned()),
            ("RESEAL_ITEMS__A__SUITE".to_owned(), "0x0578".to_owned()),
            ("RESEAL_ITEMS__A__FLAG".to_owned(), "true".to_owned()),
            ("RESEAL_ITEMS__A__CONT".to_owned(), "1".to_owned()),
        ]);
        let _ = deserialize::<Top>(&mut doc);
        let p: Vec<String> = doc.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("environment variable RESEAL_ITEMS__A__CONT: items.a.cont: unknown field `cont`; did you mean `count`?"),
            "{p:?}"
        );
        let mut doc = Document::parse("items:\n  a: {type: raw-rsa}\n", "t.yaml");
        doc.apply_env([
            ("RESEAL_ITEMS__A__COUNT".to_owned(), "7".to_owned()),
            ("RESEAL_ITEMS__A__SUITE".to_owned(), "0x0578".to_owned()),
        ]);
        let top = deserialize::<Top>(&mut doc).unwrap();
        assert!(doc.problems.is_empty());
        assert_eq!(top.items["a"].count, Some(7));
        assert_eq!(top.items["a"].suite.as_deref(), Some("0x0578"));
        assert!(!top.items["a"].flag);
        assert_eq!(top.items["a"].kind, Kind2::RawRsa);
        assert!(top.items["a"].wait.is_none());
    }

    #[test]
    fn enum_values_must_be_names() {
        let (_, p) = run("items:\n  a: {type: 0}\n");
        assert!(
            p[0].starts_with(
                "t.yaml:2:13: items.a.type: expected one of `raw-rsa`, `raw-aes`, found `0`"
            ),
            "{p:?}"
        );
    }
}
