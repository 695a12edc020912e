//! The lines and values of the TOML subset, before any meaning is given to them.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

/// Text from the file, quoted for a message: escaped, and cut after 32 characters.
pub(super) fn found(text: &str) -> String {
    const LIMIT: usize = 32;
    let mut s = String::from("\"");
    for c in text.chars().take(LIMIT) {
        let _ = write!(s, "{}", c.escape_debug());
    }
    if text.chars().nth(LIMIT).is_some() {
        s.push_str("...");
    }
    s.push('"');
    s
}

/// A value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value<'a> {
    Str(String),
    Int(u64),
    Bool(bool),
    Array(Vec<Value<'a>>),
    Table(Vec<(&'a str, Value<'a>)>),
}

impl Value<'_> {
    /// Its type, for a message.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Str(_) => "a string",
            Self::Int(_) => "an integer",
            Self::Bool(_) => "a boolean",
            Self::Array(_) => "an array",
            Self::Table(_) => "an inline table",
        }
    }
}

/// What one line holds.
#[derive(Debug)]
pub(super) enum Item<'a> {
    Blank,
    Header(Header),
    Entry(&'a str, Value<'a>),
}

/// A table header.
#[derive(Debug)]
pub(super) enum Header {
    /// `[[vm]]`, and what is wrong after it, if anything.
    Vm(Option<String>),
    /// Any other header, or a malformed one: why it is refused.
    Other(String),
}

/// A line that does not read.
#[derive(Debug)]
pub(super) struct LineError {
    pub(super) field: Option<String>,
    pub(super) reason: String,
}

/// A position in one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// The longest run of characters that satisfy `f`.
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.bump();
        }
        &self.s[start..self.pos]
    }

    /// Whether only whitespace and a comment are left.
    fn at_end(&mut self) -> bool {
        self.skip_ws();
        matches!(self.peek(), None | Some('#'))
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Reads one line (without its line ending).
pub(super) fn read_line(line: &str) -> Result<Item<'_>, LineError> {
    let mut c = Cursor { s: line, pos: 0 };
    if c.at_end() {
        return Ok(Item::Blank);
    }
    if c.peek() == Some('[') {
        return Ok(Item::Header(read_header(&mut c)));
    }
    let not_entry = || LineError {
        field: None,
        reason: format!("expected \"key = value\", found {}", found(line.trim())),
    };
    let key = c.take_while(is_key_char);
    if key.is_empty() {
        return Err(not_entry());
    }
    c.skip_ws();
    if !c.eat('=') {
        return Err(not_entry());
    }
    let in_field = |reason: String| LineError {
        field: Some(key.to_string()),
        reason,
    };
    c.skip_ws();
    let value = read_value(&mut c, false).map_err(in_field)?;
    if !c.at_end() {
        return Err(in_field(format!(
            "unexpected {} after the value",
            found(c.rest())
        )));
    }
    Ok(Item::Entry(key, value))
}

/// Reads a header line from its `[`.
fn read_header(c: &mut Cursor<'_>) -> Header {
    let line = c.s.trim();
    c.eat('[');
    let double = c.eat('[');
    c.skip_ws();
    let name = c.take_while(is_key_char);
    c.skip_ws();
    let closed = c.eat(']') && (!double || c.eat(']'));
    if name.is_empty() || !closed {
        return Header::Other(format!(
            "expected a table header like \"[[vm]]\", found {}",
            found(line)
        ));
    }
    if !(double && name == "vm") {
        return Header::Other(format!(
            "unknown table {}: a VM is a [[vm]] table",
            found(line)
        ));
    }
    if c.at_end() {
        Header::Vm(None)
    } else {
        Header::Vm(Some(format!("unexpected {} after [[vm]]", found(c.rest()))))
    }
}

/// Reads a value; `nested` inside an array or inline table, where only scalars may be.
fn read_value<'a>(c: &mut Cursor<'a>, nested: bool) -> Result<Value<'a>, String> {
    match c.peek() {
        None | Some('#') => Err("missing value".into()),
        Some('"') => read_string(c).map(Value::Str),
        Some('[') if nested => Err("arrays cannot be nested".into()),
        Some('{') if nested => Err("inline tables cannot be nested".into()),
        Some('[') => read_array(c),
        Some('{') => read_table(c),
        Some(_) => {
            let start = c.rest();
            let word = c.take_while(|ch| ch.is_ascii_alphanumeric() || "_.+-".contains(ch));
            match word {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                w if w.starts_with(|ch: char| ch.is_ascii_digit()) => read_int(w).map(Value::Int),
                w if w.starts_with(['-', '+']) => {
                    Err(format!("{}: signed integers are not accepted", found(w)))
                }
                _ => Err(format!(
                    "expected a value (string, integer, boolean, array or inline table), found {}",
                    found(start)
                )),
            }
        }
    }
}

/// Reads a basic string from its opening quote.
fn read_string(c: &mut Cursor<'_>) -> Result<String, String> {
    c.eat('"');
    let mut s = String::new();
    loop {
        match c.bump() {
            None => return Err("unterminated string".into()),
            Some('"') => return Ok(s),
            Some('\\') => match c.bump() {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some(e) => {
                    return Err(format!(
                        "unknown escape \"\\{}\" (known: \\\" \\\\ \\n \\t)",
                        e.escape_debug()
                    ))
                }
                None => return Err("unterminated string".into()),
            },
            Some(ch) if ch.is_control() && ch != '\t' => {
                return Err(format!(
                    "control character {:?} in a string (write \\n or \\t)",
                    ch
                ))
            }
            Some(ch) => s.push(ch),
        }
    }
}

/// An integer: decimal without a leading zero, or `0x` hex; `_` only between digits.
fn read_int(word: &str) -> Result<u64, String> {
    let bad = || format!("{} is not an integer", found(word));
    let (digits, radix) = match word.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None if word.len() > 1 && word.starts_with('0') => {
            return Err(format!(
                "{}: leading zeros are not allowed (write 0x for hex)",
                found(word)
            ))
        }
        None => (word, 10),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return Err(bad());
    }
    let mut value: u64 = 0;
    let mut last_underscore = false;
    for ch in digits.chars() {
        if ch == '_' {
            if last_underscore {
                return Err(bad());
            }
            last_underscore = true;
            continue;
        }
        last_underscore = false;
        let d = ch.to_digit(radix).ok_or_else(bad)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or_else(|| format!("{} is out of range (more than 64 bits)", found(word)))?;
    }
    Ok(value)
}

/// Reads an array of integers or of strings, from its `[`.
fn read_array<'a>(c: &mut Cursor<'a>) -> Result<Value<'a>, String> {
    c.eat('[');
    let mut items = Vec::new();
    loop {
        c.skip_ws();
        if c.eat(']') {
            break;
        }
        let item = read_value(c, true)?;
        match (&item, items.first()) {
            (Value::Bool(_), _) => return Err("arrays hold integers or strings".into()),
            (_, Some(first))
                if core::mem::discriminant(first) != core::mem::discriminant(&item) =>
            {
                return Err(format!(
                    "mixed types in an array ({} after {})",
                    item.kind(),
                    first.kind()
                ))
            }
            _ => items.push(item),
        }
        c.skip_ws();
        if c.eat(']') {
            break;
        }
        if !c.eat(',') {
            return Err(format!(
                "expected \",\" or \"]\" in an array, found {}",
                found(c.rest())
            ));
        }
    }
    Ok(Value::Array(items))
}

/// Reads an inline table of scalars, from its `{`.
fn read_table<'a>(c: &mut Cursor<'a>) -> Result<Value<'a>, String> {
    c.eat('{');
    let mut entries: Vec<(&'a str, Value<'a>)> = Vec::new();
    c.skip_ws();
    if c.eat('}') {
        return Ok(Value::Table(entries));
    }
    loop {
        c.skip_ws();
        let key = c.take_while(is_key_char);
        if key.is_empty() {
            return Err(format!(
                "expected a key in an inline table, found {}",
                found(c.rest())
            ));
        }
        c.skip_ws();
        if !c.eat('=') {
            return Err(format!(
                "expected \"=\" after \"{key}\" in an inline table, found {}",
                found(c.rest())
            ));
        }
        c.skip_ws();
        let value = read_value(c, true)?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(format!("key \"{key}\" given twice in an inline table"));
        }
        entries.push((key, value));
        c.skip_ws();
        if c.eat('}') {
            return Ok(Value::Table(entries));
        }
        if !c.eat(',') {
            return Err(format!(
                "expected \",\" or \"}}\" in an inline table, found {}",
                found(c.rest())
            ));
        }
    }
}
