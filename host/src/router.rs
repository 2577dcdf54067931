//! Route lookup, compiled once per config. Routes are filed by host (exact, wildcard suffix, any)
//! and then in a trie of path segments, so a lookup walks the request path once instead of trying
//! every route: its cost follows the path's depth, not the number of routes.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// How a route matches the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Literal segments and `{name}` segments, the whole path.
    Pattern(String),
    /// This literal path and everything below it, segment by segment.
    Prefix(String),
}

/// What a route asks of a request.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Lower-case names, or `*.suffix`; empty means any host.
    pub hosts: Vec<String>,
    pub path: PathMatch,
    pub methods: Vec<Method>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub query: Vec<(String, String)>,
    pub priority: i32,
}

/// The parts of a request that routing looks at.
pub struct RequestView<'a> {
    /// As sent: may hold a port or upper case.
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

/// A found route, with its path parameters as byte ranges of the request path.
#[derive(Debug)]
pub struct Match<'a, T> {
    pub value: &'a T,
    pub params: Vec<(Arc<str>, Range<usize>)>,
    /// Bytes of the request path that the route's `path_prefix` covered.
    pub prefix_len: usize,
}

type Rank = (i32, u16, u8, u16, Reverse<u32>);

struct Entry<T> {
    value: T,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    query: Vec<(String, String)>,
    param_names: Vec<Arc<str>>,
    prefix_len: usize,
    /// Rank without the host part, which depends on the table the route was found in.
    priority: i32,
    path_rank: u8,
    path_len: u16,
    order: u32,
}

#[derive(Default)]
struct Node {
    statics: HashMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    /// Routes whose whole path ends here.
    exact: Vec<u32>,
    /// Routes whose prefix ends here.
    prefix: Vec<u32>,
}

pub struct Router<T> {
    entries: Vec<Entry<T>>,
    exact_hosts: HashMap<Box<str>, Node>,
    /// Keyed by the suffix with its leading dot: `.example.com`.
    wildcard_hosts: HashMap<Box<str>, Node>,
    any_host: Node,
}

impl<T> Router<T> {
    pub fn new(routes: impl IntoIterator<Item = (RouteSpec, T)>) -> Self {
        let mut router = Router {
            entries: Vec::new(),
            exact_hosts: HashMap::new(),
            wildcard_hosts: HashMap::new(),
            any_host: Node::default(),
        };
        for (order, (spec, value)) in routes.into_iter().enumerate() {
            router.insert(order as u32, spec, value);
        }
        router
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every route's value, in the order the routes were given.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|e| &e.value)
    }

    fn insert(&mut self, order: u32, spec: RouteSpec, value: T) {
        let id = self.entries.len() as u32;
        let (segments, path_rank, prefix_len, is_prefix) = match &spec.path {
            PathMatch::Any => (Vec::new(), 0, 0, true),
            PathMatch::Prefix(p) => {
                let p = p.trim_end_matches('/');
                (split(p), 1, p.len(), true)
            }
            PathMatch::Pattern(p) => {
                let segs = split(p);
                let rank = if segs.iter().any(|s| is_param(s)) {
                    2
                } else {
                    3
                };
                (segs, rank, 0, false)
            }
        };
        let param_names = segments
            .iter()
            .filter(|s| is_param(s))
            .map(|s| Arc::from(&s[1..s.len() - 1]))
            .collect();
        self.entries.push(Entry {
            value,
            methods: spec.methods,
            headers: spec.headers,
            query: spec.query,
            param_names,
            prefix_len,
            priority: spec.priority,
            path_rank,
            path_len: segments.len().min(u16::MAX as usize) as u16,
            order,
        });
        if spec.hosts.is_empty() {
            insert_path(&mut self.any_host, &segments, id, is_prefix);
        }
        for host in &spec.hosts {
            let node = match host.strip_prefix('*') {
                Some(suffix) => self.wildcard_hosts.entry(suffix.into()).or_default(),
                None => self.exact_hosts.entry(host.as_str().into()).or_default(),
            };
            insert_path(node, &segments, id, is_prefix);
        }
    }

    /// The best route for a request: highest priority, then the most specific host, then the most
    /// specific path (exact, pattern, prefix; longer first), then the first in the file.
    pub fn lookup<'a>(&'a self, req: &RequestView<'_>) -> Option<Match<'a, T>> {
        self.search(req, None).best.map(|(_, id, caps)| {
            let e = &self.entries[id as usize];
            Match {
                value: &e.value,
                params: e.param_names.iter().cloned().zip(caps).collect(),
                prefix_len: e.prefix_len,
            }
        })
    }

    /// For a request `lookup` found no route for: the methods of the routes that would take it
    /// with another method (for `405 Method Not Allowed` and its `Allow`), sorted; empty when
    /// its path matches nothing. Walks again, so only the miss pays.
    pub fn allowed_methods(&self, req: &RequestView<'_>) -> Vec<Method> {
        let mut allow = self.search(req, Some(Vec::new())).allow.unwrap_or_default();
        allow.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allow.dedup();
        allow
    }

    /// Walks the routes for `req`: the best match, or with `allow` the methods of the routes
    /// only the method keeps out.
    fn search<'a, 'q>(
        &'a self,
        req: &'a RequestView<'q>,
        allow: Option<Vec<Method>>,
    ) -> Search<'a, 'q, T> {
        let mut search = Search {
            router: self,
            req,
            caps: Vec::new(),
            best: None,
            allow,
        };
        search.run(&normalize_host(req.host));
        search
    }
}

impl<T> Search<'_, '_, T> {
    fn run(&mut self, host: &str) {
        let router = self.router;
        if let Some(node) = router.exact_hosts.get(host) {
            self.walk_from(node, u16::MAX);
        }
        if !router.wildcard_hosts.is_empty() {
            for (i, _) in host.match_indices('.') {
                let suffix = &host[i..];
                if let Some(node) = router.wildcard_hosts.get(suffix) {
                    self.walk_from(node, suffix.len().min(u16::MAX as usize - 1) as u16);
                }
            }
        }
        self.walk_from(&router.any_host, 0);
    }
}

struct Search<'r, 'q, T> {
    router: &'r Router<T>,
    req: &'r RequestView<'q>,
    caps: Vec<Range<usize>>,
    best: Option<(Rank, u32, Vec<Range<usize>>)>,
    /// Collecting, instead of the best route, the methods of routes only the method keeps out.
    allow: Option<Vec<Method>>,
}

impl<T> Search<'_, '_, T> {
    fn walk_from(&mut self, root: &Node, host_rank: u16) {
        match self.req.path.strip_prefix('/') {
            Some(rest) => self.walk(root, Some((rest, 1)), host_rank),
            // `OPTIONS *` (asterisk form) has no path: only routes for any path apply.
            None => self.walk(root, None, host_rank),
        }
    }

    /// `rest` is the unread part of the path and its offset, `None` once every segment is read.
    fn walk(&mut self, node: &Node, rest: Option<(&str, usize)>, host_rank: u16) {
        for &id in &node.prefix {
            self.consider(id, host_rank);
        }
        let Some((text, off)) = rest else {
            for &id in &node.exact {
                self.consider(id, host_rank);
            }
            return;
        };
        let (seg, next) = match text.find('/') {
            Some(i) => (&text[..i], Some((&text[i + 1..], off + i + 1))),
            None => (text, None),
        };
        if let Some(child) = node.statics.get(seg) {
            self.walk(child, next, host_rank);
        }
        if let Some(child) = &node.param
            && !seg.is_empty()
        {
            self.caps.push(off..off + seg.len());
            self.walk(child, next, host_rank);
            self.caps.pop();
        }
    }

    fn consider(&mut self, id: u32, host_rank: u16) {
        let e = &self.router.entries[id as usize];
        let rank: Rank = (
            e.priority,
            host_rank,
            e.path_rank,
            e.path_len,
            Reverse(e.order),
        );
        if self.best.as_ref().is_some_and(|(b, _, _)| *b >= rank) {
            return;
        }
        let req = self.req;
        let method_ok = e.methods.is_empty() || e.methods.contains(req.method);
        if !method_ok && self.allow.is_none() {
            return;
        }
        if !e
            .headers
            .iter()
            .all(|(n, v)| req.headers.get_all(n).iter().any(|have| have == v))
        {
            return;
        }
        if !e.query.iter().all(|(k, v)| query_has(req.query, k, v)) {
            return;
        }
        if let Some(allow) = &mut self.allow {
            allow.extend(e.methods.iter().cloned());
            return;
        }
        self.best = Some((rank, id, self.caps.clone()));
    }
}

fn insert_path(mut node: &mut Node, segments: &[String], id: u32, is_prefix: bool) {
    for seg in segments {
        node = if is_param(seg) {
            node.param.get_or_insert_with(Default::default)
        } else {
            node.statics.entry(seg.as_str().into()).or_default()
        };
    }
    if is_prefix {
        node.prefix.push(id);
    } else {
        node.exact.push(id);
    }
}

/// `/a/b` → `["a", "b"]`, `/` → `[""]`, `` (a root prefix) → `[]`.
fn split(path: &str) -> Vec<String> {
    match path.strip_prefix('/') {
        Some(rest) => rest.split('/').map(str::to_string).collect(),
        None => Vec::new(),
    }
}

fn is_param(seg: &str) -> bool {
    seg.len() >= 2 && seg.starts_with('{') && seg.ends_with('}')
}

fn normalize_host(host: &str) -> Cow<'_, str> {
    // Strip a port, but not from a bracketed IPv6 literal.
    let host = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn query_has(query: Option<&str>, key: &str, value: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == key && v == value
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: PathMatch) -> RouteSpec {
        RouteSpec {
            hosts: vec![],
            path,
            methods: vec![],
            headers: vec![],
            query: vec![],
            priority: 0,
        }
    }

    fn find<'a>(r: &'a Router<&'static str>, host: &str, path: &str) -> Option<&'a str> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let headers = HeaderMap::new();
        r.lookup(&RequestView {
            host,
            path,
            query,
            method: &Method::GET,
            headers: &headers,
        })
        .map(|m| *m.value)
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let r = Router::new([(spec(PathMatch::Prefix("/api".into())), "api")]);
        assert_eq!(find(&r, "h", "/api"), Some("api"));
        assert_eq!(find(&r, "h", "/api/"), Some("api"));
        assert_eq!(find(&r, "h", "/api/v1/x"), Some("api"));
        assert_eq!(find(&r, "h", "/apix"), None);
        assert_eq!(find(&r, "h", "/"), None);
    }

    #[test]
    fn a_path_that_only_other_methods_take_lists_them() {
        let mut get = spec(PathMatch::Pattern("/users/{id}".into()));
        get.methods = vec![Method::GET, Method::HEAD];
        let mut put = spec(PathMatch::Pattern("/users/{id}".into()));
        put.methods = vec![Method::PUT];
        let r = Router::new([(get, "get"), (put, "put")]);
        let headers = HeaderMap::new();
        let view = |method| RequestView {
            host: "h",
            path: "/users/7",
            query: None,
            method,
            headers: &headers,
        };
        assert!(r.lookup(&view(&Method::DELETE)).is_none());
        assert_eq!(
            r.allowed_methods(&view(&Method::DELETE)),
            [Method::GET, Method::HEAD, Method::PUT]
        );
        assert!(r.lookup(&view(&Method::PUT)).is_some());
        let other = RequestView {
            path: "/nothing",
            ..view(&Method::DELETE)
        };
        assert!(r.allowed_methods(&other).is_empty(), "no path match: 404");
    }

    #[test]
    fn exact_beats_pattern_beats_prefix() {
        let r = Router::new([
            (spec(PathMatch::Prefix("/".into())), "root"),
            (spec(PathMatch::Prefix("/users".into())), "prefix"),
            (spec(PathMatch::Pattern("/users/{id}".into())), "pattern"),
            (spec(PathMatch::Pattern("/users/me".into())), "exact"),
        ]);
        assert_eq!(find(&r, "h", "/users/me"), Some("exact"));
        assert_eq!(find(&r, "h", "/users/42"), Some("pattern"));
        assert_eq!(find(&r, "h", "/users/42/posts"), Some("prefix"));
        assert_eq!(find(&r, "h", "/other"), Some("root"));
    }

    #[test]
    fn params_are_captured_by_name() {
        let r = Router::new([(
            spec(PathMatch::Pattern("/users/{id}/posts/{post}".into())),
            "p",
        )]);
        let headers = HeaderMap::new();
        let path = "/users/7/posts/abc";
        let m = r
            .lookup(&RequestView {
                host: "h",
                path,
                query: None,
                method: &Method::GET,
                headers: &headers,
            })
            .expect("route");
        let got: Vec<(&str, &str)> = m
            .params
            .iter()
            .map(|(n, r)| (n.as_ref(), &path[r.clone()]))
            .collect();
        assert_eq!(got, vec![("id", "7"), ("post", "abc")]);
        assert_eq!(find(&r, "h", "/users//posts/abc"), None);
    }

    #[test]
    fn priority_overrides_specificity() {
        let mut low = spec(PathMatch::Pattern("/x".into()));
        low.priority = -1;
        let r = Router::new([(low, "exact"), (spec(PathMatch::Any), "any")]);
        assert_eq!(find(&r, "h", "/x"), Some("any"));
    }

    #[test]
    fn hosts_exact_wildcard_and_any() {
        let mut exact = spec(PathMatch::Any);
        exact.hosts = vec!["api.example.com".into()];
        let mut wild = spec(PathMatch::Any);
        wild.hosts = vec!["*.example.com".into()];
        let r = Router::new([
            (spec(PathMatch::Any), "any"),
            (wild, "wild"),
            (exact, "exact"),
        ]);
        assert_eq!(find(&r, "API.example.com:8080", "/"), Some("exact"));
        assert_eq!(find(&r, "a.b.example.com", "/"), Some("wild"));
        assert_eq!(find(&r, "example.com", "/"), Some("any"));
    }

    #[test]
    fn query_and_first_declared_break_ties() {
        let mut q = spec(PathMatch::Any);
        q.query = vec![("v".into(), "2".into())];
        let r = Router::new([
            (q, "v2"),
            (spec(PathMatch::Any), "first"),
            (spec(PathMatch::Any), "second"),
        ]);
        assert_eq!(find(&r, "h", "/a?x=1&v=2"), Some("v2"));
        assert_eq!(find(&r, "h", "/a?v=20"), Some("first"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn path_match() -> impl Strategy<Value = PathMatch> {
            // As the config allows them: patterns may have `{param}` segments, prefixes are
            // literal.
            let literal = "[a-z0-9._~%*-]{0,6}";
            let seg = prop_oneof![literal, "\\{[a-z]{1,3}\\}"];
            let pattern =
                prop::collection::vec(seg, 0..5).prop_map(|s| format!("/{}", s.join("/")));
            let prefix =
                prop::collection::vec(literal, 0..5).prop_map(|s| format!("/{}", s.join("/")));
            prop_oneof![
                Just(PathMatch::Any),
                pattern.prop_map(PathMatch::Pattern),
                prefix.prop_map(PathMatch::Prefix),
            ]
        }

        fn route() -> impl Strategy<Value = RouteSpec> {
            (
                prop::collection::vec(
                    prop_oneof!["[a-z]{1,5}\\.test", "\\*\\.[a-z]{1,5}\\.test"],
                    0..2,
                ),
                path_match(),
                -3i32..3,
            )
                .prop_map(|(hosts, path, priority)| RouteSpec {
                    hosts,
                    path,
                    priority,
                    ..spec(PathMatch::Any)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever the routes and the request, lookup answers without panicking, and the
            /// parameters it returns are ranges of the request path.
            #[test]
            fn lookup_never_panics(
                routes in prop::collection::vec(route(), 0..8),
                host in "[A-Za-z0-9.:*\\[\\]-]{0,24}",
                path in prop_oneof!["/[a-z0-9/{}%.*-]{0,30}", Just("*".to_string())],
            ) {
                let r = Router::new(routes.into_iter().enumerate().map(|(i, s)| (s, i)));
                let headers = HeaderMap::new();
                let found = r.lookup(&RequestView {
                    host: &host,
                    path: &path,
                    query: None,
                    method: &Method::GET,
                    headers: &headers,
                });
                if let Some(m) = found {
                    prop_assert!(m.prefix_len <= path.len());
                    for (_, range) in &m.params {
                        prop_assert!(path.get(range.clone()).is_some());
                    }
                }
            }

            /// A literal path is always found by itself, on any host.
            #[test]
            fn a_literal_path_finds_its_route(segs in prop::collection::vec("[a-z0-9]{1,5}", 0..5)) {
                let path = format!("/{}", segs.join("/"));
                let r = Router::new([(spec(PathMatch::Pattern(path.clone())), "it")]);
                prop_assert_eq!(find(&r, "any.test", &path), Some("it"));
            }
        }
    }
}
