//! Finds import cycles between the modules of one folder of a crate (e.g. the core's
//! `runtime/`): module A depends on B when A's code names B by `super::B`, `crate::<path>::B`
//! (or, in the folder's `mod.rs`, `B::`). A `mod.rs` that declares its children is not, by
//! that alone, a dependency on them. Text after a file's `#[cfg(test)]` is not read: a test
//! module's `super` is its own file.
//!
//! A folder module (`name/mod.rs`) is read whole for its `mod.rs`, and for the `crate::<path>::`
//! paths of every file below it (their `super::` is another level).
//!
//! This is a reader of Rust text, not a compiler: it looks for path segments, which is what
//! the project's code uses to reach another module (no glob imports of siblings).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{IoContext, Result};

/// The modules of a folder and what each depends on among them.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Drops `//` comments, block comments and the contents of string and char literals.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied()) {
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            (b'"', _) => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            (c, _) => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The first segments of the paths that follow each `prefix` in `text`: `prefix::a`,
/// `prefix::{a, b::c}` give `a` and `b`.
fn after(text: &str, prefix: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if start > 0 && (is_ident(b[start - 1]) || b[start - 1] == b':') {
            continue;
        }
        let rest = &text[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            for it in items {
                let name: String = it
                    .trim()
                    .chars()
                    .take_while(|c| is_ident(*c as u8))
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| is_ident(*c as u8)).collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// `text` without the bodies of its inline modules (`mod name { ... }`): there `super::` is
/// the file's own module, not the folder's.
fn without_inline_modules(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let at_word = i == 0 || !is_ident(b[i - 1]);
        if at_word && text[i..].starts_with("mod ") {
            let rest = &text[i + 4..];
            let name_len = rest.bytes().take_while(|c| is_ident(*c)).count();
            let after_name = rest[name_len..].trim_start();
            if name_len > 0 && after_name.starts_with('{') {
                let open = text.len() - after_name.len();
                let mut depth = 0;
                let mut j = open;
                while j < b.len() {
                    match b[j] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Every `.rs` file below `dir`.
fn files_below(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let path = e.ctx(|| format!("reading {}", dir.display()))?.path();
        if path.is_dir() {
            files_below(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module graph of `dir`, whose modules `crate_path` names (`crate::runtime`, or
/// `crate` for a crate's `src/`).
pub fn graph(dir: &Path, crate_path: &str) -> Result<Graph> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let e = e.ctx(|| format!("reading {}", dir.display()))?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".rs") {
            let text =
                std::fs::read_to_string(&path).ctx(|| format!("reading {}", path.display()))?;
            files.insert(m.to_string(), text);
        } else if path.join("mod.rs").is_file() {
            let text = std::fs::read_to_string(path.join("mod.rs"))
                .ctx(|| format!("reading {}", path.display()))?;
            let mut below = Vec::new();
            files_below(&path, &mut below)?;
            let mut deep = String::new();
            for f in below
                .iter()
                .filter(|f| !f.ends_with("mod.rs") || f.parent() != Some(&path))
            {
                let t = std::fs::read_to_string(f).ctx(|| format!("reading {}", f.display()))?;
                deep.push_str(
                    &t.split("#[cfg(test)]")
                        .next()
                        .unwrap_or("")
                        .replace("super::", "_::"),
                );
                deep.push('\n');
            }
            files.insert(name, format!("{text}\n{deep}"));
        }
    }
    let parent = if files.contains_key("mod") {
        "mod"
    } else {
        "lib"
    };
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut g = Graph::new();
    for (m, text) in &files {
        let text = without_inline_modules(&strip(text.split("#[cfg(test)]").next().unwrap_or("")));
        let mut refs: Vec<String> = after(&text, &format!("{crate_path}::"));
        if m != parent && !["main", "lib", "mod"].contains(&m.as_str()) {
            // `super::` from a child is the folder's module: a sibling, or the parent's items.
            refs.extend(after(&text, "super::").into_iter().map(|r| {
                if names.contains(&r) {
                    r
                } else {
                    parent.to_string()
                }
            }));
        } else if m == parent {
            let declared: BTreeSet<&str> = text
                .lines()
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("pub mod ")
                        .or(l.trim().strip_prefix("mod "))
                })
                .map(|l| l.trim_end_matches(';').trim())
                .collect();
            for n in &names {
                if n != m
                    && declared.contains(n.as_str())
                    && !after(&text, &format!("{n}::")).is_empty()
                {
                    refs.push(n.clone());
                }
            }
        }
        let deps = g.entry(m.clone()).or_default();
        for r in refs {
            if r != *m && names.contains(&r) {
                deps.insert(r);
            }
        }
    }
    Ok(g)
}

/// Every cycle's modules, one strongly connected component of more than one module each.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm, recursive: module graphs are small.
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rhyve-modcycles-{}-{}",
            std::process::id(),
            files.len() * 1000 + files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn paths_and_groups() {
        let t = strip(
            "use super::{a, b::c, self};\n// super::x\nlet s = \"super::y\";\nsuper::d::f();",
        );
        assert_eq!(after(&t, "super::"), ["a", "b", "d"]);
        assert_eq!(after("x::super::a", "super::"), Vec::<String>::new());
    }

    #[test]
    fn a_cycle_through_the_parents_items_is_found() {
        let dir = tree(&[
            (
                "mod.rs",
                "pub mod irq;\npub mod sched;\npub fn vms() {}\nfn go() { sched::run(); }",
            ),
            ("irq.rs", "use super::sched;\nfn f() { super::vms(); }"),
            (
                "sched.rs",
                "use super::irq::handle;\n#[cfg(test)]\nmod tests { use super::mod_thing; }",
            ),
        ]);
        let g = graph(&dir, "crate::runtime").unwrap();
        assert_eq!(
            g["irq"],
            ["mod", "sched"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(g["mod"], ["sched"].iter().map(|s| s.to_string()).collect());
        let c = cycles(&g);
        assert_eq!(c, [vec!["irq".to_string(), "mod".into(), "sched".into()]]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn super_inside_an_inline_module_is_the_files_own() {
        let t = without_inline_modules("use super::a;\npub mod timer {\n    use super::x;\n    fn f() { if y { super::z(); } }\n}\nfn g() { super::b(); }");
        assert_eq!(after(&t, "super::"), ["a", "b"]);
    }

    #[test]
    fn a_tree_without_cycles() {
        let dir = tree(&[
            ("mod.rs", "//! docs\npub mod a;\npub mod b;\n"),
            ("a.rs", "use crate::runtime::b::X;"),
            ("b.rs", "fn f() {}"),
        ]);
        let g = graph(&dir, "crate::runtime").unwrap();
        assert!(cycles(&g).is_empty(), "{g:?}");
        assert!(g["a"].contains("b"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
