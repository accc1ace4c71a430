use super::*;

fn ok(text: &str) -> Manifest {
    match parse(text, Path::new("app/yun.toml")) {
        Ok(m) => m,
        Err(e) => panic!("expected {text:?} to parse, got: {e}"),
    }
}

/// The error for `text`, as (line, column, field, message), after checking its Display form
/// names the file and all four parts.
fn bad(text: &str) -> (usize, usize, String, String) {
    let file = Path::new("conf/yun.toml");
    let e = match parse(text, file) {
        Ok(m) => panic!("expected {text:?} to fail, got {m:?}"),
        Err(e) => e,
    };
    let shown = e.to_string();
    match e {
        ManifestError::Invalid { file: f, line, column, field, message } => {
            assert_eq!(f, file);
            assert_eq!(shown, format!("conf/yun.toml:{line}:{column}: {field}: {message}"));
            (line, column, field, message)
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Asserts the error's position and field, and that its message contains `needle`.
#[track_caller]
fn assert_bad(text: &str, line: usize, column: usize, field: &str, needle: &str) {
    let (l, c, f, m) = bad(text);
    assert_eq!((l, c, f.as_str()), (line, column, field), "message: {m}");
    assert!(m.contains(needle), "message {m:?} should contain {needle:?}");
}

fn name(s: &str) -> FunctionName {
    FunctionName::new(s).unwrap()
}

const FULL: &str = r#"
[app]
name = "shop"

[functions.hello]
path = "hello"
build = "cargo"
instance = "per-request"
memory = "256Mi"
timeout = "10s"
max_body = 1048576
private = true
allow_outbound = ["api.example.com", "*.example.org:443"]
env = { GREETING = "hello", _DEBUG = "1" }
secrets = { DATABASE_URL = "db-url" }
tags = { prod = "latest", stable = 3 }
traffic = { latest = 90, stable = 10 }
sticky = "cookie:session"

[functions.hello.scale]
min = 1
max = 10
concurrency = 2
idle = "60s"
keep_alive = "adaptive"
queue = 100
queue_timeout = "30s"
freeze = "0s"
window = "1m"

[functions.api]
path = "services/api"
build = "pip install -r requirements.txt -t vendor"
source = "."
command = "python3 app.py"
health = "/healthz"
startup_timeout = "20s"
idle_timeout = "10m"
secrets = ["DB_PASSWORD", "API_KEY"]
rollout = "10m"

[functions.lam]
runtime = "process"
mode = "lambda"
command = "./bootstrap"
handler = "app.handler"
source = "dist/lam.zip"

[[routes]]
path = "/api/users/*"
host = "API.example.com"
function = "api"
tag = "prod"

[[routes]]
path = "/hello"
function = "elsewhere"
"#;

#[test]
fn a_full_manifest_parses_to_its_values() {
    let m = ok(FULL);
    assert_eq!(m.file, Path::new("app/yun.toml"));
    assert_eq!(m.dir, Path::new("app"));
    assert_eq!(m.app.as_deref(), Some("shop"));
    assert_eq!(m.functions.keys().map(FunctionName::as_str).collect::<Vec<_>>(), ["api", "hello", "lam"]);

    let hello = &m.functions[&name("hello")];
    let expected = FunctionDef {
        path: PathBuf::from("app/hello"),
        build: Some(Build::Cargo),
        source: None,
        runtime: Runtime::Wasm,
        process: None,
        instance: Some(InstanceMode::PerRequest),
        memory_bytes: Some(256 << 20),
        timeout_ms: Some(10_000),
        max_body_bytes: Some(1 << 20),
        private: true,
        allow_outbound: vec!["api.example.com".into(), "*.example.org:443".into()],
        buckets: vec![],
        kv: vec![],
        sql: vec![],
        env: [("GREETING".to_string(), "hello".to_string()), ("_DEBUG".into(), "1".into())].into(),
        secrets: [("DATABASE_URL".to_string(), "db-url".to_string())].into(),
        tags: [("prod".to_string(), RevisionRef::Latest), ("stable".into(), RevisionRef::Number(3))].into(),
        traffic: Some([(RevisionRef::Latest, 90), (RevisionRef::Tag("stable".into()), 10)].into()),
        rollout_ms: None,
        sticky: Some("cookie:session".into()),
        scale: ScaleSpec {
            min_instances: Some(1),
            max_instances: Some(10),
            concurrency: Some(2),
            idle_ms: Some(60_000),
            keep_alive: Some(KeepAliveKind::Adaptive),
            max_queue: Some(100),
            queue_timeout_ms: Some(30_000),
            freeze_ms: Some(0),
            window_ms: Some(60_000),
        },
        asynchronous: None,
        triggers: vec![],
    };
    assert_eq!(hello, &expected);

    let api = &m.functions[&name("api")];
    assert_eq!(api.path, Path::new("app/services/api"));
    assert_eq!(api.build, Some(Build::Command("pip install -r requirements.txt -t vendor".into())));
    assert_eq!(api.source.as_deref(), Some(Path::new("app/services/api/.")));
    assert_eq!(api.runtime, Runtime::Process);
    assert_eq!(
        api.process,
        Some(ProcessDef {
            mode: ProcessMode::Http,
            command: "python3 app.py".into(),
            health: Some("/healthz".into()),
            handler: None,
            startup_timeout_ms: Some(20_000),
            idle_timeout_ms: Some(600_000),
        })
    );
    assert_eq!(api.instance, None);
    assert_eq!(api.rollout_ms, Some(600_000));
    assert_eq!(api.traffic, None);
    assert_eq!(api.scale, ScaleSpec::default());
    assert_eq!(
        api.secrets,
        [("API_KEY".to_string(), "API_KEY".to_string()), ("DB_PASSWORD".into(), "DB_PASSWORD".into())].into()
    );

    let lam = &m.functions[&name("lam")];
    let p = lam.process.as_ref().unwrap();
    assert_eq!(
        (p.mode, p.handler.as_deref(), p.command.as_str()),
        (ProcessMode::Lambda, Some("app.handler"), "./bootstrap")
    );
    assert_eq!((p.startup_timeout_ms, p.idle_timeout_ms), (None, None));
    assert_eq!(lam.source.as_deref(), Some(Path::new("app/./dist/lam.zip")));

    assert_eq!(
        m.routes,
        vec![
            RouteDef {
                host: Some("api.example.com".into()),
                path: "/api/users/*".into(),
                function: name("api"),
                tag: Some("prod".into()),
            },
            RouteDef { host: None, path: "/hello".into(), function: name("elsewhere"), tag: None },
        ]
    );
}

#[test]
fn empty_and_function_less_manifests_are_valid() {
    for text in ["", "\n# nothing yet\n", "[app]\nname = \"x\"\n", "[functions]\n", "routes = []\n"] {
        let m = ok(text);
        assert!(m.functions.is_empty() && m.routes.is_empty(), "{text:?}");
    }
    assert_eq!(ok("[app]\n").app, None);
}

#[test]
fn defaults_fill_what_is_left_out() {
    let m = parse(
        "[functions.w]\nsource = \"w.wasm\"\n[functions.p]\ncommand = \"./run\"\nsource = \"code\"\n",
        Path::new("yun.toml"),
    )
    .unwrap();
    let w = &m.functions[&name("w")];
    assert_eq!(m.dir, Path::new(""));
    assert_eq!(w.path, Path::new("."));
    assert_eq!(w.source.as_deref(), Some(Path::new("./w.wasm")));
    assert_eq!(w.runtime, Runtime::Wasm);
    assert_eq!((w.process.is_none(), w.instance, w.build.as_ref()), (true, None, None));
    assert_eq!((w.memory_bytes, w.timeout_ms, w.max_body_bytes), (None, None, None));
    assert!(!w.private && w.env.is_empty() && w.secrets.is_empty() && w.tags.is_empty());
    assert_eq!((&w.traffic, w.rollout_ms, &w.sticky), (&None, None, &None));

    // `command` makes a function a process function without saying so, in the default mode.
    let p = &m.functions[&name("p")];
    assert_eq!(p.runtime, Runtime::Process);
    assert_eq!(p.process.as_ref().map(|p| p.mode), Some(ProcessMode::Http));

    let abs = parse("[functions.w]\nbuild = \"cargo\"\n", Path::new("/srv/shop/yun.toml")).unwrap();
    assert_eq!(abs.functions[&name("w")].path, Path::new("/srv/shop/."));
}

#[test]
fn secrets_come_as_an_array_or_a_table() {
    let m = ok("[functions.a]\nbuild = \"cargo\"\nsecrets = [\"DB_PASSWORD\"]\n\
                [functions.b]\nbuild = \"cargo\"\nsecrets = { DATABASE_URL = \"db-url\", TOKEN = \"api.token\" }\n\
                [functions.c]\nbuild = \"cargo\"\nsecrets = []\n");
    assert_eq!(
        m.functions[&name("a")].secrets,
        [("DB_PASSWORD".to_string(), "DB_PASSWORD".to_string())].into()
    );
    assert_eq!(
        m.functions[&name("b")].secrets,
        [("DATABASE_URL".to_string(), "db-url".to_string()), ("TOKEN".into(), "api.token".into())].into()
    );
    assert!(m.functions[&name("c")].secrets.is_empty());
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    assert_bad("databases = 3\n", 1, 1, "databases", "unknown field `databases`");
    assert_bad("[app]\nname = \"x\"\nowner = \"me\"\n", 3, 1, "app.owner", "unknown field `owner`");
    assert_bad(
        "[functions.hello]\nbuild = \"cargo\"\n  memroy = \"128Mi\"\n",
        3,
        3,
        "functions.hello.memroy",
        "unknown field `memroy`, expected one of `path`",
    );
    assert_bad(
        "[functions]\nhello = { build = \"cargo\", x = 1 }\n",
        2,
        28,
        "functions.hello.x",
        "unknown field `x`",
    );
    assert_bad(
        "[functions.hello]\nbuild = \"cargo\"\n\n[functions.hello.scale]\nmin = 0\nmni = 3\n",
        6,
        1,
        "functions.hello.scale.mni",
        "unknown field `mni`, expected one of `min`",
    );
    assert_bad(
        "[[routes]]\npath = \"/x\"\nfunction = \"a\"\n\n[[routes]]\npath = \"/y\"\nfunction = \"b\"\nfnction = 3\n",
        8,
        1,
        "routes[1].fnction",
        "unknown field `fnction`",
    );
}

#[test]
fn syntax_and_type_errors_name_the_place() {
    assert_bad(
        "[functions.hello]\nbuild = \"cargo\nmemory = 3\n",
        2,
        15,
        "functions.hello.build",
        "invalid basic string",
    );
    assert_bad(
        "[functions.hello]\nbuild = \"cargo\"\nprivate = \"yes\"\n",
        3,
        11,
        "functions.hello.private",
        "expected a boolean",
    );
    assert_bad(
        "[functions.a]\nbuild = \"cargo\"\nmemory = true\n",
        3,
        10,
        "functions.a.memory",
        "expected a string or an integer",
    );
    assert_bad(
        "[functions.a]\nbuild = \"cargo\"\nsecrets = 3\n",
        3,
        11,
        "functions.a.secrets",
        "expected an array of secret names",
    );
    assert_bad(
        "[functions.a]\nbuild = \"cargo\"\nsecrets = [\"A\", 3]\n",
        3,
        17,
        "functions.a.secrets[1]",
        "expected a string",
    );
    assert_bad(
        "[functions.a]\nbuild = \"cargo\"\ntraffic = { latest = \"all\" }\n",
        3,
        22,
        "functions.a.traffic.latest",
        "expected an integer",
    );
    assert_bad("functions = []\n", 1, 13, "functions", "invalid type");
    // Columns count characters, not bytes, as editors do.
    assert_bad(
        "[functions.a]\nbuild = \"cargo\"\nenv = { \"é\" = \"x\", \"ÉÉ\" = 3 }\n",
        3,
        27,
        "functions.a.env.\"ÉÉ\"",
        "expected a string",
    );
}

#[test]
fn a_missing_required_field_points_at_its_table() {
    let (line, column, field, message) =
        bad("[[routes]]\npath = \"/x\"\nfunction = \"a\"\n\n[[routes]]\npath = \"/y\"\n");
    assert_eq!((line, field.as_str(), message.as_str()), (5, "routes[1]", "missing field `function`"));
    assert_eq!(column, 1);
}

#[test]
fn function_and_route_names_are_checked() {
    assert_bad(
        "[functions.Hello]\nbuild = \"cargo\"\n",
        1,
        12,
        "functions.Hello",
        "is invalid: use lowercase letters",
    );
    assert_bad("[functions.\"a.b\"]\nbuild = \"cargo\"\n", 1, 12, "functions.\"a.b\"", "is invalid");
    assert_bad(
        "[[routes]]\npath = \"/u\"\nfunction = \"Users\"\n",
        3,
        12,
        "routes[0].function",
        "is invalid",
    );
    assert_bad(
        "[[routes]]\npath = \"/u\"\nfunction = \"\"\n",
        3,
        12,
        "routes[0].function",
        "must not be empty",
    );
    // A route may lead to a function deployed some other way.
    let m = ok("[[routes]]\npath = \"/u\"\nfunction = \"users\"\n");
    assert_eq!(m.routes[0].function, name("users"));
}

#[test]
fn routes_are_checked() {
    assert_bad(
        "[[routes]]\npath = \"api/*\"\nfunction = \"a\"\n",
        2,
        8,
        "routes[0].path",
        "must start with '/'",
    );
    assert_bad(
        "[[routes]]\npath = \"/\"\nhost = \"https://x.com\"\nfunction = \"a\"\n",
        3,
        8,
        "routes[0].host",
        "not a host name",
    );
    assert_bad(
        "[[routes]]\npath = \"/\"\nfunction = \"a\"\ntag = \"Prod\"\n",
        4,
        7,
        "routes[0].tag",
        "not a tag name",
    );
    assert_bad(
        "[[routes]]\npath = \"/a\"\nfunction = \"a\"\n[[routes]]\npath = \"/a/\"\nfunction = \"b\"\n",
        4,
        1,
        "routes[1]",
        "routes[0] already routes this host and path",
    );
    // The same path on another host is a different route.
    let m = ok(
        "[[routes]]\npath = \"/a\"\nfunction = \"a\"\n[[routes]]\npath = \"/a\"\nhost = \"x.com\"\nfunction = \"b\"\n",
    );
    assert_eq!(m.routes.len(), 2);
}

#[test]
fn sizes_and_durations_must_parse_and_fit() {
    let f = |line: &str| format!("[functions.hello]\nbuild = \"cargo\"\n{line}\n");
    assert_bad(
        &f("memory = \"12 parsecs\""),
        3,
        10,
        "functions.hello.memory",
        "\"12 parsecs\" is not a size like 128Mi",
    );
    assert_bad(
        &f("memory = \"8Gi\""),
        3,
        10,
        "functions.hello.memory",
        "8Gi is out of range: it must be between 1Mi and 4Gi",
    );
    assert_bad(&f("memory = -5"), 3, 10, "functions.hello.memory", "not negative");
    assert_bad(&f("max_body = 0"), 3, 12, "functions.hello.max_body", "out of range");
    assert_bad(
        &f("timeout = \"forever\""),
        3,
        11,
        "functions.hello.timeout",
        "\"forever\" is not a duration like 30s",
    );
    assert_bad(&f("timeout = 30"), 3, 11, "functions.hello.timeout", "30 has no unit");
    assert_bad(&f("timeout = \"20m\""), 3, 11, "functions.hello.timeout", "20m is out of range");
    assert_bad(&f("rollout = \"soon\""), 3, 11, "functions.hello.rollout", "not a duration");
    assert_bad(&f("rollout = \"10ms\""), 3, 11, "functions.hello.rollout", "out of range");
    let m = ok(&f("memory = \"1Gi\"\ntimeout = \"1m 30s\"\nmax_body = \"512Ki\"\nrollout = \"1h\""));
    let d = &m.functions[&name("hello")];
    assert_eq!(
        (d.memory_bytes, d.timeout_ms, d.max_body_bytes, d.rollout_ms),
        (Some(1 << 30), Some(90_000), Some(512 << 10), Some(3_600_000))
    );
}

#[test]
fn process_keys_are_rejected_on_wasm_functions() {
    for (line, key) in [
        ("mode = \"http\"", "mode"),
        ("health = \"/h\"", "health"),
        ("handler = \"a.b\"", "handler"),
        ("startup_timeout = \"1s\"", "startup_timeout"),
        ("idle_timeout = \"1m\"", "idle_timeout"),
    ] {
        let text = format!("[functions.w]\nbuild = \"cargo\"\n{line}\n");
        assert_bad(
            &text,
            3,
            1 + key.len() + 3,
            &format!("functions.w.{key}"),
            &format!("only process functions take `{key}`"),
        );
        assert_bad(&text, 3, 1 + key.len() + 3, &format!("functions.w.{key}"), "because it has no `command`");
    }
    assert_bad(
        "[functions.w]\nruntime = \"wasm\"\nsource = \"w.wasm\"\ncommand = \"./run\"\n",
        4,
        11,
        "functions.w.command",
        "this one has runtime = \"wasm\"",
    );
}

#[test]
fn wasm_keys_are_rejected_on_process_functions() {
    assert_bad(
        "[functions.p]\ncommand = \"./run\"\nsource = \".\"\ninstance = \"reuse\"\n",
        4,
        12,
        "functions.p.instance",
        "only wasm functions take `instance`",
    );
    assert_bad(
        "[functions.p]\ncommand = \"./run\"\nbuild = \"cargo\"\n",
        3,
        9,
        "functions.p.build",
        "builds a wasm component",
    );
    assert_bad(
        "[functions.w]\nbuild = \"cargo\"\ninstance = \"sometimes\"\n",
        3,
        12,
        "functions.w.instance",
        "unknown instance mode",
    );
}

#[test]
fn process_functions_are_checked() {
    assert_bad(
        "[functions.p]\nruntime = \"process\"\nsource = \".\"\n",
        1,
        12,
        "functions.p.command",
        "a process function needs the shell command",
    );
    assert_bad(
        "[functions.p]\ncommand = \"  \"\nsource = \".\"\n",
        2,
        11,
        "functions.p.command",
        "must not be empty",
    );
    assert_bad(
        "[functions.p]\nruntime = \"docker\"\n",
        2,
        11,
        "functions.p.runtime",
        "expected \"wasm\" or \"process\"",
    );
    let p = |rest: &str| format!("[functions.p]\ncommand = \"./run\"\nsource = \".\"\n{rest}\n");
    assert_bad(&p("mode = \"grpc\""), 4, 8, "functions.p.mode", "unknown process mode");
    assert_bad(&p("mode = \"stdio\"\nhealth = \"/h\""), 5, 10, "functions.p.health", "only mode = \"http\"");
    assert_bad(&p("health = \"healthz\""), 4, 10, "functions.p.health", "must start with '/'");
    assert_bad(&p("handler = \"a.b\""), 4, 11, "functions.p.handler", "only mode = \"lambda\"");
    assert_bad(&p("startup_timeout = \"10ms\""), 4, 19, "functions.p.startup_timeout", "out of range");
    assert_bad(&p("idle_timeout = \"2d\""), 4, 16, "functions.p.idle_timeout", "out of range");
    let m = ok(&p("mode = \"stdio\""));
    assert_eq!(m.functions[&name("p")].process.as_ref().map(|p| p.mode), Some(ProcessMode::Stdio));
}

#[test]
fn source_is_required_unless_cargo_builds_it() {
    assert_bad(
        "[functions.w]\nmemory = \"64Mi\"\n",
        1,
        12,
        "functions.w.source",
        "only build = \"cargo\" can do without it",
    );
    assert_bad("[functions.w]\nbuild = \"make\"\n", 1, 12, "functions.w.source", "missing");
    assert_bad("[functions.p]\ncommand = \"./run\"\n", 1, 12, "functions.p.source", "missing");
    assert_bad(
        "[functions.w]\nbuild = \"cargo\"\nsource = \"\"\n",
        3,
        10,
        "functions.w.source",
        "must not be empty",
    );
    assert_bad("[functions.w]\nbuild = \"\"\n", 2, 9, "functions.w.build", "must not be empty");
    assert_bad(
        "[functions.w]\npath = \"\"\nbuild = \"cargo\"\n",
        2,
        8,
        "functions.w.path",
        "must not be empty",
    );
    // An explicit source beside a cargo build wins: it is resolved like any other.
    let m = ok("[functions.w]\npath = \"w\"\nbuild = \"cargo\"\nsource = \"out/w.wasm\"\n");
    assert_eq!(m.functions[&name("w")].source.as_deref(), Some(Path::new("app/w/out/w.wasm")));
}

#[test]
fn traffic_is_checked() {
    let f = |rest: &str| format!("[functions.a]\nbuild = \"cargo\"\ntags = {{ stable = 3 }}\n{rest}\n");
    assert_bad(
        &f("traffic = { latest = 90, stable = 5 }"),
        4,
        11,
        "functions.a.traffic",
        "must add up to 100, got 95",
    );
    assert_bad(&f("traffic = {}"), 4, 11, "functions.a.traffic", "got 0");
    assert_bad(
        &f("traffic = { latest = 150 }"),
        4,
        22,
        "functions.a.traffic.latest",
        "150 is not a percentage",
    );
    assert_bad(
        &f("traffic = { latest = 101, stable = -1 }"),
        4,
        22,
        "functions.a.traffic.latest",
        "not a percentage",
    );
    assert_bad(
        &f("traffic = { latest = 50, canary = 50 }"),
        4,
        26,
        "functions.a.traffic.canary",
        "\"canary\" is not a tag of this function",
    );
    assert_bad(
        &f("traffic = { latest = 50, \"0\" = 50 }"),
        4,
        26,
        "functions.a.traffic.0",
        "revisions are numbered from 1",
    );
    assert_bad(
        &f("traffic = { \"3\" = 50, \"03\" = 50 }"),
        4,
        23,
        "functions.a.traffic.03",
        "revision 3 is given twice",
    );
    assert_bad(
        &f("traffic = { latest = 100 }\nrollout = \"5m\""),
        5,
        11,
        "functions.a.rollout",
        "cannot both be set",
    );
    let m = ok(&f("traffic = { \"2\" = 0, \"4\" = 25, stable = 75 }"));
    let t = m.functions[&name("a")].traffic.clone().unwrap();
    assert_eq!(
        t.into_iter().collect::<Vec<_>>(),
        [(RevisionRef::Number(2), 0), (RevisionRef::Number(4), 25), (RevisionRef::Tag("stable".into()), 75)]
    );
}

#[test]
fn tags_are_checked() {
    let f = |tags: &str| format!("[functions.a]\nbuild = \"cargo\"\ntags = {tags}\n");
    assert_bad(
        &f("{ prod = \"stable\", stable = 3 }"),
        3,
        17,
        "functions.a.tags.prod",
        "a tag cannot refer to another tag",
    );
    assert_bad(&f("{ latest = 3 }"), 3, 10, "functions.a.tags.latest", "reserved");
    assert_bad(&f("{ Prod = 3 }"), 3, 10, "functions.a.tags.Prod", "not a tag name");
    assert_bad(&f("{ prod = 0 }"), 3, 17, "functions.a.tags.prod", "numbered from 1");
    assert_bad(&f("{ prod = \"\" }"), 3, 17, "functions.a.tags.prod", "is not a revision");
    let m = ok(&f("{ a = \"7\", b = \"latest\", c = 12 }"));
    assert_eq!(
        m.functions[&name("a")].tags,
        [
            ("a".to_string(), RevisionRef::Number(7)),
            ("b".into(), RevisionRef::Latest),
            ("c".into(), RevisionRef::Number(12))
        ]
        .into()
    );
}

#[test]
fn env_and_secret_names_are_checked() {
    let f = |rest: &str| format!("[functions.a]\nbuild = \"cargo\"\n{rest}\n");
    assert_bad(
        &f("env = { \"1BAD\" = \"x\" }"),
        3,
        9,
        "functions.a.env.1BAD",
        "not an environment variable name",
    );
    assert_bad(
        &f("env = { \"A-B\" = \"x\" }"),
        3,
        9,
        "functions.a.env.A-B",
        "not an environment variable name",
    );
    assert_bad(
        &f("secrets = [\"OK\", \"2FA\"]"),
        3,
        18,
        "functions.a.secrets.2FA",
        "not an environment variable name",
    );
    assert_bad(
        &f("secrets = { \"MY-VAR\" = \"x\" }"),
        3,
        13,
        "functions.a.secrets.MY-VAR",
        "not an environment variable name",
    );
    assert_bad(&f("secrets = { TOKEN = \"-tok\" }"), 3, 21, "functions.a.secrets.TOKEN", "not a secret name");
    // A valid variable name that the secret store would refuse as a secret name.
    assert_bad(&f("secrets = [\"_X\"]"), 3, 12, "functions.a.secrets._X", "not a secret name");
    assert_bad(&f("secrets = [\"A\", \"A\"]"), 3, 17, "functions.a.secrets.A", "listed twice");
    assert_bad(
        &f("env = { TOKEN = \"x\" }\nsecrets = [\"TOKEN\"]"),
        4,
        12,
        "functions.a.secrets.TOKEN",
        "set in both `env` and `secrets`",
    );
    assert_bad(&f("allow_outbound = [\"http://x.com/\"]"), 3, 19, "functions.a.allow_outbound", "not a host");
}

#[test]
fn sticky_is_checked() {
    let f = |v: &str| format!("[functions.a]\nbuild = \"cargo\"\nsticky = \"{v}\"\n");
    for v in ["session", "cookie:", "header:", "query:id", "cookie:a b"] {
        assert_bad(&f(v), 3, 10, "functions.a.sticky", "is not \"header:NAME\" or \"cookie:NAME\"");
    }
    assert_eq!(ok(&f("header:x-user-id")).functions[&name("a")].sticky.as_deref(), Some("header:x-user-id"));
}

#[test]
fn scale_is_checked() {
    let f = |rest: &str| format!("[functions.a]\nbuild = \"cargo\"\n[functions.a.scale]\n{rest}\n");
    assert_bad(&f("min = 5\nmax = 2"), 4, 7, "functions.a.scale.min", "min (5) must not exceed max (2)");
    assert_bad(&f("max = 0"), 4, 7, "functions.a.scale.max", "between 1 and 1000");
    assert_bad(&f("min = -1"), 4, 7, "functions.a.scale.min", "out of range");
    assert_bad(&f("concurrency = 0"), 4, 15, "functions.a.scale.concurrency", "out of range");
    assert_bad(&f("queue = 99999999999"), 4, 9, "functions.a.scale.queue", "out of range");
    assert_bad(
        &f("keep_alive = \"sometimes\""),
        4,
        14,
        "functions.a.scale.keep_alive",
        "unknown keep-alive policy",
    );
    assert_bad(&f("idle = \"10ms\""), 4, 8, "functions.a.scale.idle", "out of range");
    assert_bad(&f("window = \"1s\""), 4, 10, "functions.a.scale.window", "out of range");
    assert_bad(&f("queue_timeout = \"x\""), 4, 17, "functions.a.scale.queue_timeout", "not a duration");
    assert_bad(&f("freeze = 5"), 4, 10, "functions.a.scale.freeze", "has no unit");
    let m = ok(&f("min = 3\nmax = 3\nkeep_alive = \"fixed\""));
    let s = &m.functions[&name("a")].scale;
    assert_eq!(
        (s.min_instances, s.max_instances, s.keep_alive),
        (Some(3), Some(3), Some(KeepAliveKind::Fixed))
    );
    // Only `min` set: the server's default max applies, which this crate does not know.
    assert_eq!(ok(&f("min = 50")).functions[&name("a")].scale.min_instances, Some(50));
}

#[test]
fn the_first_bad_function_in_the_file_is_reported() {
    // "zeta" sorts after "alpha" but comes first in the file.
    let (line, _, field, _) = bad(
        "[functions.zeta]\nmemory = \"x\"\nbuild = \"cargo\"\n[functions.alpha]\nmemory = \"y\"\nbuild = \"cargo\"\n",
    );
    assert_eq!((line, field.as_str()), (2, "functions.zeta.memory"));
}

#[test]
fn load_reads_the_file_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("yun.toml");
    std::fs::write(&file, "[functions.hi]\nbuild = \"cargo\"\n").unwrap();
    let m = load(&file).unwrap();
    assert_eq!((m.file.as_path(), m.dir.as_path()), (file.as_path(), dir.path()));
    assert_eq!(m.functions[&name("hi")].path, dir.path().join("."));

    std::fs::write(&file, "[functions.hi]\nbuild = \"cargo\"\nmemory = \"lots\"\n").unwrap();
    let shown = load(&file).unwrap_err().to_string();
    assert_eq!(
        shown,
        format!("{}:3:10: functions.hi.memory: \"lots\" is not a size like 128Mi", file.display())
    );

    let missing = dir.path().join("nope.toml");
    let e = load(&missing).unwrap_err();
    assert!(
        matches!(&e, ManifestError::Read { file, source } if file == &missing && source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(e.to_string().starts_with(&format!("reading {}: ", missing.display())), "{e}");
}

#[test]
fn revision_refs_display_order_and_parse() {
    let refs =
        [RevisionRef::Tag("b".into()), RevisionRef::Number(10), RevisionRef::Latest, RevisionRef::Number(2)];
    let mut sorted = refs.to_vec();
    sorted.sort();
    assert_eq!(sorted.iter().map(ToString::to_string).collect::<Vec<_>>(), ["latest", "2", "10", "b"]);
    for r in &refs {
        assert_eq!(r.to_string().parse::<RevisionRef>().as_ref(), Ok(r));
    }
    assert!("0".parse::<RevisionRef>().is_err());
    assert!("Stable".parse::<RevisionRef>().is_err());
    assert!("".parse::<RevisionRef>().is_err());
}

#[test]
fn line_and_column_come_from_byte_offsets() {
    let text = "ab\r\ncé\nx";
    assert_eq!(locate::line_col(text, 0), (1, 1));
    assert_eq!(locate::line_col(text, 1), (1, 2));
    assert_eq!(locate::line_col(text, 4), (2, 1));
    // 'é' is two bytes but one column; an offset inside it counts from its start.
    assert_eq!(locate::line_col(text, 6), (2, 2));
    assert_eq!(locate::line_col(text, 7), (2, 3));
    assert_eq!(locate::line_col(text, 8), (3, 1));
    assert_eq!(locate::line_col(text, 100), (3, 2));
    assert_eq!(locate::key("plain-key_1"), "plain-key_1");
    assert_eq!(locate::key("a.b"), "\"a.b\"");
    assert_eq!(locate::key(""), "\"\"");
}

#[test]
fn the_documented_example_is_valid() {
    let doc: String = include_str!("lib.rs")
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(doc.contains("[functions.hello.scale]"), "example not found in the crate docs");
    let m = ok(&doc);
    assert_eq!(m.functions.keys().map(FunctionName::as_str).collect::<Vec<_>>(), ["api", "hello"]);
    assert_eq!(m.functions[&name("hello")].runtime, Runtime::Wasm);
    assert_eq!(m.functions[&name("api")].runtime, Runtime::Process);
    assert_eq!(m.routes[0].function, name("users"));
}

#[test]
fn queues_topics_async_settings_and_triggers_parse() {
    let m = ok(r#"
[queues.orders]
visibility = "45s"
max_receives = 3
dlq = "orders-dead"

[queues.orders-dead]

[topics.news]
subscribers = ["queue:orders", "function:worker"]

[functions.worker]
source = "w.wasm"

[functions.worker.async]
max_attempts = 5
retry_delay = "200ms"
on_failure = "queue:orders-dead"

[[functions.worker.triggers]]
id = "orders"
queue = "orders"
batch_size = 10
window = "1s"

[[functions.worker.triggers]]
id = "nightly"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
missed = "skip"
"#);
    let q = &m.queues["orders"];
    assert_eq!(
        (q.visibility_ms, q.max_receives, q.dlq.as_deref()),
        (Some(45_000), Some(3), Some("orders-dead"))
    );
    assert_eq!(m.topics["news"], ["queue:orders", "function:worker"]);
    let w = &m.functions[&name("worker")];
    let a = w.asynchronous.as_ref().unwrap();
    assert_eq!((a.max_attempts, a.retry_base_ms), (5, 200));
    assert_eq!(a.on_failure, Some(yun_types::Destination::Queue("orders-dead".into())));
    assert_eq!(w.triggers.len(), 2);
    assert!(matches!(&w.triggers[0], yun_types::Trigger::Queue { batch_size: 10, window_ms: 1000, .. }));
    assert!(matches!(&w.triggers[1], yun_types::Trigger::Cron { missed, .. } if missed == "skip"));
}

#[test]
fn bad_event_settings_name_their_place() {
    let (line, _, field, _) = bad(
        "[functions.w]\nsource = \"w.wasm\"\n\n[[functions.w.triggers]]\nid = \"t\"\nqueue = \"q\"\ncron = \"* * * * *\"\n",
    );
    assert_eq!((line, field.as_str()), (4, "functions.w.triggers[0]"));
    let (line, _, field, message) = bad("[topics.t]\nsubscribers = [\"bucket:x\"]\n");
    assert_eq!((line, field.as_str()), (2, "topics.t.subscribers[0]"));
    assert!(message.contains("not a subscriber"), "{message}");
    let (line, _, _, message) = bad("[queues.q]\nvisibilty = \"1s\"\n");
    assert_eq!(line, 2);
    assert!(message.contains("unknown field"), "{message}");
    let (line, _, field, _) =
        bad("[functions.w]\nsource = \"w.wasm\"\n[functions.w.async]\non_success = \"nowhere\"\n");
    assert_eq!((line, field.as_str()), (4, "functions.w.async.on_success"));
}

#[test]
fn storage_triggers_name_a_bucket_and_their_events() {
    let m = ok(r#"
[functions.thumbs]
source = "t.wasm"

[[functions.thumbs.triggers]]
id = "uploads"
bucket = "photos"
events = ["created"]
prefix = "in/"
suffix = ".jpg"
"#);
    let t = &m.functions[&name("thumbs")].triggers[0];
    assert_eq!(
        t,
        &yun_types::Trigger::Storage {
            id: "uploads".into(),
            bucket: "photos".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: Some("in/".into()),
            suffix: Some(".jpg".into()),
        }
    );
    let (line, _, field, message) = bad(
        "[functions.w]\nsource = \"w.wasm\"\n\n[[functions.w.triggers]]\nid = \"t\"\nbucket = \"b\"\nevents = [\"ObjectChanged\"]\n",
    );
    assert_eq!((line, field.as_str()), (7, "functions.w.triggers[0].events"));
    assert!(message.contains("unknown storage event"), "{message}");
    let (_, _, field, _) = bad(
        "[functions.w]\nsource = \"w.wasm\"\n\n[[functions.w.triggers]]\nid = \"t\"\nqueue = \"q\"\nprefix = \"x\"\n",
    );
    assert_eq!(field, "functions.w.triggers[0].prefix");
}
