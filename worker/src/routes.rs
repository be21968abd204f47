//! The route table: every path, its methods and handlers, and whether browsers call it
//! cross-origin. One rule for all: a known path with another method is a 405 listing the
//! allowed ones; an unknown path is a 404 naming it.

use worker::Method;

/// Every endpoint the collector serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    SegmentIngest,
    Health,
    DemoConfig,
    DemoPartner,
    SetDemoPartner,
    Ingest,
    Stats,
    Catalog,
    FlagsEvaluate,
    FlagsRuleset,
    OfrepEvaluateAll,
    OfrepEvaluateOne,
    OfrepConfiguration,
    StageGet,
    StagePut,
    StageDelete,
    Commit,
    Log,
    GetCommit,
    Publish,
    Rollback,
    Diff,
    AuditLog,
    Export,
    Import,
    ProbesList,
    ProbePush,
    ProbeOverride,
    ProbeHistory,
    AppsList,
    AppsCreate,
    AppGet,
    AppDelete,
    FaultsGet,
    FaultsPut,
    Pipeline,
    PipelineDrain,
    ClientDropsReset,
    Meta,
    Overview,
    RecentEvents,
    ConfigEntries,
    ConfigEvaluate,
    AppUpdate,
    AppRotateKey,
    FlagsCompile,
    FlagsCompiled,
    ArchiveStatus,
    ArchiveRun,
    ArchiveObjects,
    ArchiveObject,
    ExperimentResults,
}

/// A path pattern (`{name}` matches one segment) and what each method does there.
pub struct Route {
    pub pattern: &'static str,
    /// Called by browsers from apps' origins: CORS preflights and headers.
    pub cross_origin: bool,
    pub methods: &'static [(Method, Endpoint)],
}

macro_rules! route {
    ($pattern:literal, cors, $($method:ident => $endpoint:ident),+) => {
        Route { pattern: $pattern, cross_origin: true, methods: &[$((Method::$method, Endpoint::$endpoint)),+] }
    };
    ($pattern:literal, $($method:ident => $endpoint:ident),+) => {
        Route { pattern: $pattern, cross_origin: false, methods: &[$((Method::$method, Endpoint::$endpoint)),+] }
    };
}

pub const ROUTES: &[Route] = &[
    route!("/healthz", Get => Health),
    route!("/demo-config.json", Get => DemoConfig),
    route!("/demo-partner/health", Get => DemoPartner, Put => SetDemoPartner),
    route!("/v1/events", cors, Post => Ingest),
    // Segment's tracking API (telltale_core::segment).
    route!("/v1/batch", cors, Post => SegmentIngest),
    route!("/v1/track", cors, Post => SegmentIngest),
    route!("/v1/page", cors, Post => SegmentIngest),
    route!("/v1/screen", cors, Post => SegmentIngest),
    route!("/v1/identify", cors, Post => SegmentIngest),
    route!("/v1/group", cors, Post => SegmentIngest),
    route!("/v1/alias", cors, Post => SegmentIngest),
    route!("/v1/stats", Get => Stats),
    route!("/v1/catalog", Get => Catalog),
    route!("/v1/overview", Get => Overview),
    route!("/v1/events/recent", Get => RecentEvents),
    route!("/v1/meta", Get => Meta),
    route!("/v1/flags/evaluate", cors, Get => FlagsEvaluate, Post => FlagsEvaluate),
    route!("/v1/flags/ruleset", cors, Get => FlagsRuleset),
    route!("/v1/flags/compiled", cors, Get => FlagsCompiled),
    route!("/v1/flags/compile", Post => FlagsCompile),
    route!("/ofrep/v1/evaluate/flags", cors, Post => OfrepEvaluateAll),
    route!("/ofrep/v1/evaluate/flags/{key}", cors, Post => OfrepEvaluateOne),
    route!("/ofrep/v1/configuration", cors, Get => OfrepConfiguration),
    route!("/v1/apps/{app}/config/stage", Get => StageGet),
    route!("/v1/apps/{app}/config/stage/{kind}/{key}", Put => StagePut, Delete => StageDelete),
    route!("/v1/apps/{app}/config/commits", Get => Log, Post => Commit),
    route!("/v1/apps/{app}/config/commits/{id}", Get => GetCommit),
    route!("/v1/apps/{app}/config/publish", Post => Publish),
    route!("/v1/apps/{app}/config/rollback", Post => Rollback),
    route!("/v1/apps/{app}/config/diff", Get => Diff),
    route!("/v1/apps/{app}/config/audit", Get => AuditLog),
    route!("/v1/apps/{app}/config/export", Get => Export),
    route!("/v1/apps/{app}/config/import", Post => Import),
    route!("/v1/apps/{app}/config/entries", Get => ConfigEntries),
    route!("/v1/apps/{app}/config/evaluate", Post => ConfigEvaluate),
    route!("/v1/apps/{app}/experiments/{key}/results", Get => ExperimentResults),
    route!("/v1/apps/{app}/probes", Get => ProbesList),
    route!("/v1/apps/{app}/probes/{name}/results", Post => ProbePush),
    route!("/v1/apps/{app}/probes/{name}/override", Put => ProbeOverride),
    route!("/v1/apps/{app}/probes/{name}/history", Get => ProbeHistory),
    route!("/v1/admin/apps", Get => AppsList, Post => AppsCreate),
    route!("/v1/admin/apps/{id}", Get => AppGet, Patch => AppUpdate, Delete => AppDelete),
    route!("/v1/admin/apps/{id}/rotate-key", Post => AppRotateKey),
    route!("/v1/admin/faults", Get => FaultsGet, Put => FaultsPut),
    route!("/v1/admin/pipeline", Get => Pipeline),
    route!("/v1/admin/pipeline/drain", Post => PipelineDrain),
    route!("/v1/admin/pipeline/client-drops", Delete => ClientDropsReset),
    route!("/v1/admin/archive", Get => ArchiveStatus),
    route!("/v1/admin/archive/run", Post => ArchiveRun),
    route!("/v1/admin/archive/objects", Get => ArchiveObjects),
    route!("/v1/admin/archive/object", Get => ArchiveObject),
];

/// What a request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    Found {
        endpoint: Endpoint,
        params: Vec<&'a str>,
        cross_origin: bool,
    },
    /// `OPTIONS` on a cross-origin route.
    Preflight,
    /// The path exists; the method does not (`allow` lists the methods that do).
    MethodNotAllowed {
        allow: String,
        cross_origin: bool,
    },
    NotFound,
}

/// Matches `path` against `pattern`, returning the `{...}` segments.
fn match_pattern<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut params = Vec::new();
    let mut want = pattern.trim_matches('/').split('/');
    let mut have = path.trim_matches('/').split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') && !h.is_empty() => {
                params.push(h)
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Patch => "PATCH",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        _ => "OTHER",
    }
}

/// Resolves a request's method and path through [`ROUTES`].
pub fn resolve<'a>(method: &Method, path: &'a str) -> Resolved<'a> {
    for route in ROUTES {
        let Some(params) = match_pattern(route.pattern, path) else {
            continue;
        };
        if let Some((_, endpoint)) = route.methods.iter().find(|(m, _)| m == method) {
            return Resolved::Found {
                endpoint: *endpoint,
                params,
                cross_origin: route.cross_origin,
            };
        }
        if route.cross_origin && *method == Method::Options {
            return Resolved::Preflight;
        }
        let mut allow: Vec<&str> = route.methods.iter().map(|(m, _)| method_name(m)).collect();
        if route.cross_origin {
            allow.push("OPTIONS");
        }
        allow.dedup();
        return Resolved::MethodNotAllowed {
            allow: allow.join(", "),
            cross_origin: route.cross_origin,
        };
    }
    Resolved::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_with_their_parameters() {
        assert_eq!(
            resolve(&Method::Put, "/v1/apps/shop/config/stage/flags/checkout"),
            Resolved::Found {
                endpoint: Endpoint::StagePut,
                params: vec!["shop", "flags", "checkout"],
                cross_origin: false
            }
        );
        assert_eq!(
            resolve(&Method::Post, "/ofrep/v1/evaluate/flags/new-ui"),
            Resolved::Found {
                endpoint: Endpoint::OfrepEvaluateOne,
                params: vec!["new-ui"],
                cross_origin: true
            }
        );
        // A trailing slash names the same resource.
        assert!(matches!(
            resolve(&Method::Get, "/v1/stats/"),
            Resolved::Found {
                endpoint: Endpoint::Stats,
                ..
            }
        ));
    }

    #[test]
    fn one_rule_for_wrong_methods_and_unknown_paths() {
        assert_eq!(
            resolve(&Method::Delete, "/v1/apps/shop/config/commits"),
            Resolved::MethodNotAllowed {
                allow: "GET, POST".into(),
                cross_origin: false
            }
        );
        assert_eq!(
            resolve(&Method::Get, "/v1/events"),
            Resolved::MethodNotAllowed {
                allow: "POST, OPTIONS".into(),
                cross_origin: true
            }
        );
        assert_eq!(resolve(&Method::Options, "/v1/events"), Resolved::Preflight);
        assert_eq!(
            resolve(&Method::Options, "/v1/stats"),
            Resolved::MethodNotAllowed {
                allow: "GET".into(),
                cross_origin: false
            }
        );
        assert_eq!(resolve(&Method::Get, "/v1/nope"), Resolved::NotFound);
        assert_eq!(
            resolve(&Method::Get, "/v1/config/stage/flags"),
            Resolved::NotFound
        );
        // An empty segment is not a parameter.
        assert_eq!(
            resolve(&Method::Get, "/v1/admin/apps//"),
            Resolved::Found {
                endpoint: Endpoint::AppsList,
                params: vec![],
                cross_origin: false
            }
        );
    }

    #[test]
    fn every_route_is_reachable_and_unique() {
        for (i, route) in ROUTES.iter().enumerate() {
            let path = route.pattern.replace('{', "x").replace('}', "");
            for (method, endpoint) in route.methods {
                match resolve(method, &path) {
                    Resolved::Found {
                        endpoint: found, ..
                    } => {
                        assert_eq!(
                            found,
                            *endpoint,
                            "{} {}",
                            method_name(method),
                            route.pattern
                        )
                    }
                    other => panic!(
                        "{} {} resolved to {other:?}",
                        method_name(method),
                        route.pattern
                    ),
                }
            }
            for other in &ROUTES[i + 1..] {
                assert_ne!(route.pattern, other.pattern);
            }
        }
    }
}
