//! Layering rules for the server crate, checked by reading `server/src`.
//!
//! The crate is split into top-level modules: each `src/X.rs` file and each
//! `src/X/` folder is module `X`. Five rules keep that split layered:
//!
//! 1. No import cycles: a module never depends, directly or through other
//!    modules, on a module that depends on it. Every `crate::X` path in a file
//!    of module `Y` is an edge `Y -> X`; every strongly connected component of
//!    that graph must be a single module.
//! 2. HTTP stays in the API: `StatusCode` and `ApiError` appear only under
//!    `src/api/`. The services below report domain errors; the API maps them.
//! 3. The API does not touch storage: nothing under `src/api/` names
//!    `sea_orm` or `crate::storage`. Handlers go through the services.
//! 4. Services take typed ids: no `pub fn` outside `src/api/` and
//!    `src/storage/` has a parameter named like an id (`id`, `ids`, `*_id`,
//!    `*_ids`, `seq`, `*_seq`) typed as a bare `&str`, `String`, `i64` or a
//!    list or option of them. Ids are `warroom_types::id` types, checked
//!    once where they enter.
//! 5. Services make their own authorization checks: nothing under `src/api/`
//!    names `require_system`, `SystemAction` or `Server` (the server's own
//!    `Actor::Server`, which no request may present). A handler passes the
//!    caller to the service, and the service asks the policy.
//!
//! Each rule carries a list of known violations (the `KNOWN_*` lists below),
//! all empty now that the tree satisfies every rule. They are a ratchet: a
//! test fails on a violation missing from its list, and also on a listed
//! violation that no longer exists, so a list can only shrink and always
//! describes the tree as it is. A new violation is fixed, not listed.
//!
//! The scan is textual: comments and string literals are skipped, and only
//! paths written as `crate::...` count (a top-level file never uses `super::`
//! to reach a sibling module).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module dependency edges (`from -> to`) that still lie on an import cycle.
const KNOWN_CYCLE_EDGES: &[&str] = &[];

/// Files outside `src/api/` that still name `StatusCode` or `ApiError`.
const KNOWN_HTTP_TYPES_OUTSIDE_API: &[&str] = &[];

/// Files under `src/api/` that still name `sea_orm` or `crate::storage`.
const KNOWN_STORAGE_IN_API: &[&str] = &[];

/// Files under `src/api/` that still make system authorization checks.
const KNOWN_AUTHZ_IN_API: &[&str] = &[];

/// Public functions that still take a bare id (`file: function(parameter)`).
const KNOWN_BARE_ID_PARAMETERS: &[&str] = &[];

const SOURCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

// ---------------------------------------------------------------------------
// Lexing: reduce a source file to the tokens of its code.
// ---------------------------------------------------------------------------

/// One token of code with the (1-based) line it starts on. Identifiers,
/// numbers, `::` and single punctuation characters are tokens; comments and
/// the contents of string and char literals never produce any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    line: usize,
}

impl Token {
    fn is_identifier(&self) -> bool {
        self.text
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Moves one character on, counting lines so tokens keep their position.
    fn bump(&mut self) {
        if self.peek(0) == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn bump_n(&mut self, count: usize) {
        for _ in 0..count {
            self.bump();
        }
    }

    fn push(&mut self, text: String, line: usize) {
        self.tokens.push(Token { text, line });
    }

    fn run(mut self) -> Vec<Token> {
        while let Some(c) = self.peek(0) {
            match c {
                '/' if self.peek(1) == Some('/') => self.skip_line_comment(),
                '/' if self.peek(1) == Some('*') => self.skip_block_comment(),
                '"' => self.skip_quoted_string(),
                '\'' => self.skip_char_or_lifetime(),
                ':' if self.peek(1) == Some(':') => {
                    let line = self.line;
                    self.bump_n(2);
                    self.push("::".to_string(), line);
                }
                c if is_word_char(c) => self.read_word(),
                c if c.is_whitespace() => self.bump(),
                other => {
                    let line = self.line;
                    self.bump();
                    self.push(other.to_string(), line);
                }
            }
        }
        self.tokens
    }

    /// `//`, `///` and `//!` all run to the end of the line.
    fn skip_line_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// Block comments nest in Rust, so track the depth.
    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            if c == '/' && self.peek(1) == Some('*') {
                depth += 1;
                self.bump_n(2);
            } else if c == '*' && self.peek(1) == Some('/') {
                depth -= 1;
                self.bump_n(2);
                if depth == 0 {
                    return;
                }
            } else {
                self.bump();
            }
        }
    }

    /// A `"..."` string; a backslash escapes the next character.
    fn skip_quoted_string(&mut self) {
        self.bump();
        while let Some(c) = self.peek(0) {
            match c {
                '\\' => self.bump_n(2),
                '"' => {
                    self.bump();
                    return;
                }
                _ => self.bump(),
            }
        }
    }

    /// A quote starts a char literal (`'x'`, `'"'`, `'\n'`, `'\''`) or a
    /// lifetime / loop label (`'a`, `'static`). Only a char literal closes
    /// with a second quote right after its one (possibly escaped) character,
    /// which is what tells the two apart.
    fn skip_char_or_lifetime(&mut self) {
        self.bump();
        if self.peek(0) == Some('\\') {
            self.bump_n(2);
            while self.peek(0).is_some_and(|c| c != '\'') {
                self.bump();
            }
            self.bump();
        } else if self.peek(1) == Some('\'') {
            self.bump_n(2);
        } else {
            while self.peek(0).is_some_and(is_word_char) {
                self.bump();
            }
        }
    }

    /// An identifier, keyword or number. A word may also be the prefix of a
    /// raw string (`r"..."`, `br#"..."#`) or of a raw identifier (`r#type`).
    fn read_word(&mut self) {
        let line = self.line;
        let start = self.pos;
        while self.peek(0).is_some_and(is_word_char) {
            self.bump();
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        let is_raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
        if is_raw_prefix && self.try_skip_raw_string() {
            return;
        }
        if word == "r" && self.peek(0) == Some('#') {
            // Raw identifier: `r#name` is the identifier `name`.
            self.bump();
            let name_start = self.pos;
            while self.peek(0).is_some_and(is_word_char) {
                self.bump();
            }
            let name = self.chars[name_start..self.pos].iter().collect();
            self.push(name, line);
            return;
        }
        self.push(word, line);
    }

    /// Skips `#*"..."#*` after a raw prefix; returns false (consuming
    /// nothing) when what follows is not a raw string.
    fn try_skip_raw_string(&mut self) -> bool {
        let hashes = (0..).take_while(|&i| self.peek(i) == Some('#')).count();
        if self.peek(hashes) != Some('"') {
            return false;
        }
        self.bump_n(hashes + 1);
        while self.peek(0).is_some() {
            let closes =
                self.peek(0) == Some('"') && (1..=hashes).all(|i| self.peek(i) == Some('#'));
            if closes {
                self.bump_n(hashes + 1);
                return true;
            }
            self.bump();
        }
        true
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn code_tokens(source: &str) -> Vec<Token> {
    let lexer = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        line: 1,
        tokens: Vec::new(),
    };
    lexer.run()
}

// ---------------------------------------------------------------------------
// Paths: which top-level names a file reaches through `crate::`.
// ---------------------------------------------------------------------------

/// The first segment after every `crate::` in the tokens, with its line:
/// `crate::a::f()` gives `a`; `use crate::{a::B, b, c::{d, e}}` gives `a`,
/// `b` and `c` (names nested deeper are below those and not top-level).
fn crate_path_heads(tokens: &[Token]) -> Vec<&Token> {
    let mut heads = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let starts_crate_path =
            token.text == "crate" && tokens.get(i + 1).is_some_and(|t| t.text == "::");
        if !starts_crate_path {
            continue;
        }
        match tokens.get(i + 2) {
            Some(next) if next.text == "{" => heads.extend(group_heads(&tokens[i + 3..])),
            Some(next) if next.is_identifier() => heads.push(next),
            _ => {}
        }
    }
    heads
}

/// The first identifier of each item in a `{ ... }` use group, given the
/// tokens just after its opening brace.
fn group_heads(tokens: &[Token]) -> Vec<&Token> {
    let mut heads = Vec::new();
    let mut depth = 1usize;
    let mut at_item_start = true;
    for token in tokens {
        match token.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            "," if depth == 1 => {
                at_item_start = true;
                continue;
            }
            _ if depth == 1 && at_item_start && token.is_identifier() => heads.push(token),
            _ => {}
        }
        if depth == 1 {
            at_item_start = false;
        }
    }
    heads
}

// ---------------------------------------------------------------------------
// The source tree.
// ---------------------------------------------------------------------------

struct SourceFile {
    /// Path from `server/`, with `/` separators, e.g. `src/chat/mod.rs`.
    path: String,
    /// The top-level module the file belongs to; `None` for `lib.rs` and
    /// `main.rs`, which are crate roots rather than modules.
    module: Option<String>,
    tokens: Vec<Token>,
}

impl SourceFile {
    fn is_in_api(&self) -> bool {
        self.module.as_deref() == Some("api")
    }

    /// Where any of `names` is used in code: (line, name) pairs.
    fn identifier_uses(&self, names: &[&str]) -> Vec<(usize, String)> {
        self.tokens
            .iter()
            .filter(|t| names.contains(&t.text.as_str()))
            .map(|t| (t.line, t.text.clone()))
            .collect()
    }
}

/// Most violations to list per file; the rest only counted, to keep failure
/// messages readable.
const MAX_LINES_SHOWN: usize = 8;

/// `line 3 (ApiError), line 9 (StatusCode)`, in line order.
fn describe_uses(mut uses: Vec<(usize, String)>) -> String {
    uses.sort();
    uses.dedup();
    let mut shown: Vec<String> = uses
        .iter()
        .take(MAX_LINES_SHOWN)
        .map(|(line, name)| format!("line {line} ({name})"))
        .collect();
    if uses.len() > MAX_LINES_SHOWN {
        shown.push(format!("and {} more", uses.len() - MAX_LINES_SHOWN));
    }
    shown.join(", ")
}

struct SourceTree {
    modules: BTreeSet<String>,
    files: Vec<SourceFile>,
}

impl SourceTree {
    fn load() -> SourceTree {
        let root = Path::new(SOURCE_DIR);
        let mut relative_paths = Vec::new();
        collect_rust_files(root, "", &mut relative_paths);
        relative_paths.sort();
        assert!(
            relative_paths.iter().any(|p| p == "lib.rs"),
            "no lib.rs under {SOURCE_DIR}; is CARGO_MANIFEST_DIR the server crate?"
        );
        let files = relative_paths
            .iter()
            .map(|relative| load_file(root, relative))
            .collect::<Vec<_>>();
        let modules = files.iter().filter_map(|f| f.module.clone()).collect();
        SourceTree { modules, files }
    }

    /// Edges between top-level modules, each with the first file (and line)
    /// that creates it, so a failure says where to look.
    fn module_graph(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut graph: BTreeMap<String, BTreeMap<String, String>> = self
            .modules
            .iter()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect();
        for file in &self.files {
            let Some(from) = &file.module else { continue };
            for head in crate_path_heads(&file.tokens) {
                // `crate::label` and the like are re-exports, not modules.
                if head.text == *from || !self.modules.contains(&head.text) {
                    continue;
                }
                let example = format!("{}:{}", file.path, head.line);
                graph
                    .get_mut(from)
                    .expect("every file's module is a graph node")
                    .entry(head.text.clone())
                    .or_insert(example);
            }
        }
        graph
    }
}

/// Appends the paths (relative to `src/`) of all `.rs` files below `dir`.
fn collect_rust_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry is readable");
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            collect_rust_files(&path, &format!("{relative}/"), out);
        } else if name.ends_with(".rs") {
            out.push(relative);
        }
    }
}

fn load_file(root: &Path, relative: &str) -> SourceFile {
    let full_path = root.join(relative);
    let source = fs::read_to_string(&full_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", full_path.display()));
    SourceFile {
        path: format!("src/{relative}"),
        module: module_of(relative),
        tokens: code_tokens(&source),
    }
}

/// `chat/mod.rs` and `chat/views.rs` belong to `chat`; `app.rs` is `app`.
fn module_of(relative: &str) -> Option<String> {
    match relative.split_once('/') {
        Some((folder, _)) => Some(folder.to_string()),
        None if relative == "lib.rs" || relative == "main.rs" => None,
        None => relative.strip_suffix(".rs").map(str::to_string),
    }
}

// ---------------------------------------------------------------------------
// Strongly connected components (Tarjan).
// ---------------------------------------------------------------------------

struct Tarjan<'g> {
    graph: &'g BTreeMap<String, BTreeMap<String, String>>,
    next_index: usize,
    index: BTreeMap<&'g str, usize>,
    low_link: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: BTreeSet<&'g str>,
    components: Vec<BTreeSet<String>>,
}

impl<'g> Tarjan<'g> {
    fn visit(&mut self, node: &'g str) {
        self.index.insert(node, self.next_index);
        self.low_link.insert(node, self.next_index);
        self.next_index += 1;
        self.stack.push(node);
        self.on_stack.insert(node);

        let graph = self.graph;
        for target in graph[node].keys() {
            let target = target.as_str();
            if !self.index.contains_key(target) {
                self.visit(target);
                self.lower_link(node, self.low_link[target]);
            } else if self.on_stack.contains(target) {
                self.lower_link(node, self.index[target]);
            }
        }

        if self.low_link[node] == self.index[node] {
            self.pop_component(node);
        }
    }

    fn lower_link(&mut self, node: &'g str, candidate: usize) {
        let low = self
            .low_link
            .get_mut(node)
            .expect("visited node has a low link");
        *low = (*low).min(candidate);
    }

    fn pop_component(&mut self, root: &'g str) {
        let mut component = BTreeSet::new();
        loop {
            let member = self.stack.pop().expect("component root is on the stack");
            self.on_stack.remove(member);
            component.insert(member.to_string());
            if member == root {
                break;
            }
        }
        self.components.push(component);
    }
}

fn strongly_connected_components(
    graph: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<BTreeSet<String>> {
    let mut tarjan = Tarjan {
        graph,
        next_index: 0,
        index: BTreeMap::new(),
        low_link: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.visit(node);
        }
    }
    tarjan.components
}

// ---------------------------------------------------------------------------
// The ratchet.
// ---------------------------------------------------------------------------

/// Compares the violations found (key -> evidence) with a rule's list of
/// known ones, and describes any difference in either direction.
fn ratchet_failures(
    list_name: &str,
    known: &[&str],
    found: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, evidence) in found {
        if !known.contains(&key.as_str()) {
            failures.push(format!("new violation {key}: {evidence}"));
        }
    }
    for key in known {
        if !found.contains_key(*key) {
            failures.push(format!(
                "{list_name} lists {key:?}, which no longer occurs: \
                 remove it from the list; the rule now holds there"
            ));
        }
    }
    failures
}

fn assert_ratchet(rule: &str, list_name: &str, known: &[&str], found: &BTreeMap<String, String>) {
    let failures = ratchet_failures(list_name, known, found);
    assert!(failures.is_empty(), "{rule}\n  {}\n", failures.join("\n  "));
}

/// Files (outside or inside `src/api/`, per `in_api`) using any of `names`,
/// keyed by path, with where they are used.
fn files_using(
    tree: &SourceTree,
    in_api: bool,
    names: &[&str],
) -> BTreeMap<String, Vec<(usize, String)>> {
    tree.files
        .iter()
        .filter(|f| f.is_in_api() == in_api)
        .map(|f| (f.path.clone(), f.identifier_uses(names)))
        .filter(|(_, uses)| !uses.is_empty())
        .collect()
}

fn describe_files(files: BTreeMap<String, Vec<(usize, String)>>) -> BTreeMap<String, String> {
    files
        .into_iter()
        .map(|(path, uses)| (path, describe_uses(uses)))
        .collect()
}

// ---------------------------------------------------------------------------
// The rules.
// ---------------------------------------------------------------------------

#[test]
fn no_import_cycle_between_server_modules() {
    let tree = SourceTree::load();
    let graph = tree.module_graph();
    let cycles: Vec<BTreeSet<String>> = strongly_connected_components(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect();

    let mut report = String::new();
    let mut cycle_edges = BTreeMap::new();
    for component in &cycles {
        let members: Vec<&str> = component.iter().map(String::as_str).collect();
        report.push_str(&format!("cycle: {}\n", members.join(", ")));
        for from in component {
            for (to, example) in &graph[from] {
                if component.contains(to) {
                    report.push_str(&format!("  {from} -> {to} ({example})\n"));
                    cycle_edges.insert(format!("{from} -> {to}"), example.clone());
                }
            }
        }
    }

    let failures = ratchet_failures("KNOWN_CYCLE_EDGES", KNOWN_CYCLE_EDGES, &cycle_edges);
    assert!(
        failures.is_empty(),
        "server modules import each other in a cycle; break a cycle by moving \
         the shared item into a lower module\n  {}\n\ncurrent cycles:\n{report}",
        failures.join("\n  ")
    );
}

#[test]
fn status_codes_and_api_errors_stay_in_api() {
    let tree = SourceTree::load();
    let found = files_using(&tree, false, &["StatusCode", "ApiError"]);
    assert_ratchet(
        "StatusCode and ApiError belong to src/api/; services return domain errors",
        "KNOWN_HTTP_TYPES_OUTSIDE_API",
        KNOWN_HTTP_TYPES_OUTSIDE_API,
        &describe_files(found),
    );
}

#[test]
fn api_does_not_touch_storage() {
    let tree = SourceTree::load();
    let mut found = files_using(&tree, true, &["sea_orm"]);
    // `storage` alone is a common word; only the path into the module counts.
    for file in tree.files.iter().filter(|f| f.is_in_api()) {
        for head in crate_path_heads(&file.tokens) {
            if head.text == "storage" {
                found
                    .entry(file.path.clone())
                    .or_default()
                    .push((head.line, "crate::storage".to_string()));
            }
        }
    }
    assert_ratchet(
        "src/api/ must reach storage through the services, not sea_orm or crate::storage",
        "KNOWN_STORAGE_IN_API",
        KNOWN_STORAGE_IN_API,
        &describe_files(found),
    );
}

#[test]
fn services_check_their_own_permissions() {
    let tree = SourceTree::load();
    let found = files_using(&tree, true, &["require_system", "SystemAction", "Server"]);
    assert_ratchet(
        "src/api/ passes the caller to a service, which checks the policy; \
         handlers neither check system actions nor act as the server",
        "KNOWN_AUTHZ_IN_API",
        KNOWN_AUTHZ_IN_API,
        &describe_files(found),
    );
}

/// Whether a parameter name names an id or a sequence position.
fn names_an_id(name: &str) -> bool {
    ["id", "ids", "seq"].contains(&name)
        || name.ends_with("_id")
        || name.ends_with("_ids")
        || name.ends_with("_seq")
}

/// Whether a parameter type (its tokens joined) is a bare string or integer,
/// alone or in a reference, slice, `Vec` or `Option`.
fn is_bare_type(ty: &str) -> bool {
    let mut t = ty;
    loop {
        let before = t;
        t = t.strip_prefix('&').unwrap_or(t);
        for (open, close) in [("Option<", ">"), ("Vec<", ">"), ("[", "]")] {
            if let Some(inner) = t.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
                t = inner;
            }
        }
        if t == before {
            break;
        }
    }
    ["str", "String", "i64"].contains(&t)
}

/// `pub fn` / `pub async fn` parameters named like ids with bare types, as
/// (`file: function(parameter)`, `line`).
fn bare_id_parameters(file: &SourceFile) -> Vec<(String, usize)> {
    let tokens = &file.tokens;
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < tokens.len() {
        // Only plain `pub`: `pub(crate)` and `pub(super)` are not the API of a service.
        if tokens[i].text != "pub" || tokens[i + 1].text == "(" {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if tokens[j].text == "async" {
            j += 1;
        }
        if tokens[j].text != "fn" || j + 1 >= tokens.len() {
            i += 1;
            continue;
        }
        let name = tokens[j + 1].text.clone();
        let line = tokens[j + 1].line;
        // Skip generics up to the parameter list.
        let mut k = j + 2;
        while k < tokens.len() && tokens[k].text != "(" {
            k += 1;
        }
        // Split the parameter list at top-level commas.
        let mut depth = 0i32;
        let mut params: Vec<Vec<&str>> = vec![Vec::new()];
        k += 1;
        while k < tokens.len() {
            let t = tokens[k].text.as_str();
            match t {
                "(" | "[" | "<" => depth += 1,
                ")" | "]" | ">" if depth > 0 => depth -= 1,
                ")" => break,
                _ => {}
            }
            if t == "," && depth == 0 {
                params.push(Vec::new());
            } else {
                params.last_mut().expect("one list").push(t);
            }
            k += 1;
        }
        for p in params {
            let Some(colon) = p.iter().position(|t| *t == ":") else {
                continue;
            };
            let pname = p[..colon].last().copied().unwrap_or("");
            let ty: String = p[colon + 1..].concat();
            if names_an_id(pname) && is_bare_type(&ty) {
                out.push((format!("{}: {name}({pname})", file.path), line));
            }
        }
        i = k;
    }
    out
}

#[test]
fn services_take_typed_ids() {
    let tree = SourceTree::load();
    let mut found = BTreeMap::new();
    for file in &tree.files {
        if file.is_in_api() || file.path.starts_with("src/storage/") {
            continue;
        }
        for (key, line) in bare_id_parameters(file) {
            found.insert(key, format!("line {line}"));
        }
    }
    assert_ratchet(
        "public functions take typed ids (warroom_types::id), not bare strings or integers",
        "KNOWN_BARE_ID_PARAMETERS",
        KNOWN_BARE_ID_PARAMETERS,
        &found,
    );
}

#[test]
fn bare_id_scanner_reads_signatures() {
    let source = r##"
pub async fn get(&self, p: &Principal, id: &str) -> R {}
pub fn typed(id: &ChannelId, seq: Seq) {}
pub(crate) fn inner(id: &str) {}
pub fn many<T: Into<String>>(ids: &[String], after_seq: Option<i64>, name: &str) {}
fn private(user_id: String) {}
"##;
    let file = SourceFile {
        path: "src/x.rs".to_string(),
        module: Some("x".to_string()),
        tokens: code_tokens(source),
    };
    let found: Vec<String> = bare_id_parameters(&file)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        found,
        vec![
            "src/x.rs: get(id)".to_string(),
            "src/x.rs: many(ids)".to_string(),
            "src/x.rs: many(after_seq)".to_string(),
        ]
    );
}

// ---------------------------------------------------------------------------
// The scanner itself.
// ---------------------------------------------------------------------------

#[test]
fn scanner_sees_only_code_paths() {
    let source = r##"
use crate::{alpha::One, beta, gamma::{delta, epsilon::Two}};
use crate::
    zeta::{
        Three,
    };
// crate::commented::Out and StatusCode
/// crate::doc::Out
//! crate::inner_doc::Out
/* crate::block::Out /* nested */ crate::block_tail::Out */
pub(crate) fn f<'a>(x: &'a crate::eta::T, c: char) -> bool { crate::theta::g(x, c == 'x') }
const S: &str = "crate::quoted::Out \" crate::escaped::Out";
const R: &str = r#"crate::raw::Out " crate::raw_tail::Out"#;
const Q: char = '"'; fn h() { crate::iota::f(); }
const E: char = '\''; fn k<'b>() -> crate::kappa::Api<'b> { crate::lambda::Api { .. } }
fn r#type() -> ApiError { todo!("StatusCode") }
"##;
    let tokens = code_tokens(source);
    let heads: Vec<&str> = crate_path_heads(&tokens)
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(
        heads,
        ["alpha", "beta", "gamma", "zeta", "eta", "theta", "iota", "kappa", "lambda"]
    );

    let file = SourceFile {
        path: "src/example.rs".to_string(),
        module: Some("example".to_string()),
        tokens,
    };
    assert_eq!(
        file.identifier_uses(&["StatusCode", "ApiError"]),
        [(16, "ApiError".to_string())]
    );
    assert!(file.tokens.iter().any(|t| t.text == "type"));
}
