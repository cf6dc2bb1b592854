//! The container recipe, checked without Docker (it is not on the build machines):
//! the Dockerfile, compose.yaml and deploy/nginx.conf use only flags and `COLLOQUY_*`
//! variables that `colloquy --help` lists, and keep their promises (multi-stage,
//! non-root, a /data volume, a HEALTHCHECK the image can run, two replicas on one
//! Redis behind a proxy whose config names them).

#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .arg("--help")
        .output()
        .expect("colloquy --help runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// Every `COLLOQUY_*` name in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("COLLOQUY_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        // `COLLOQUY_*` in prose names no variable.
        if !name.ends_with('_') {
            found.insert(name);
        }
    }
    found
}

/// Every `--flag` in `text` (outside comments), except Docker's own HEALTHCHECK and
/// apt/useradd/cargo options, which are on lines that do not run colloquy.
fn colloquy_flags(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains("colloquy") && !l.contains("useradd"))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '['))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split('=').next().unwrap_or(w).to_owned())
        .filter(|w| {
            ![
                "--release",
                "--locked",
                "--from",
                "--interval",
                "--timeout",
                "--start-period",
                "--retries",
            ]
            .contains(&w.as_str())
        })
        .collect()
}

#[test]
fn every_flag_and_variable_the_recipe_uses_is_listed_by_help() {
    let help = help();
    let mut checked = 0;
    for file in ["Dockerfile", "compose.yaml"] {
        let text = repo_file(file);
        for variable in variables(&text) {
            assert!(
                help.contains(&format!("env: {variable}="))
                    || help.contains(&format!("env: {variable}]")),
                "{file} uses {variable}, which colloquy --help does not list"
            );
            checked += 1;
        }
        for flag in colloquy_flags(&text) {
            assert!(
                help.contains(&format!("{flag} "))
                    || help.contains(&format!("{flag}\n"))
                    || help.contains(&format!("{flag} <")),
                "{file} uses {flag}, which colloquy --help does not list"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} names checked");
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_unprivileged_with_a_healthcheck() {
    let dockerfile = repo_file("Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let from: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    assert!(from[0].ends_with(" AS build"));
    assert!(
        from[1].contains("debian") && from[1].contains("slim"),
        "{}",
        from[1]
    );
    assert!(
        dockerfile.contains("cargo build --release --locked -p colloquy-server"),
        "builds the server binary"
    );
    assert!(
        dockerfile.contains("COPY --from=build /usr/local/bin/colloquy /usr/local/bin/colloquy")
    );
    let user = instructions
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER instruction");
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
    assert!(!user.starts_with("0:"), "{user}");
    assert!(dockerfile.contains(r#"VOLUME ["/data"]"#));
    assert!(dockerfile.contains("COLLOQUY_STORE=sqlite:/data/colloquy.db"));
    // The health check runs the binary itself (the image has no curl).
    assert!(dockerfile.contains(r#"CMD ["colloquy", "--healthcheck"]"#));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["colloquy"]"#));
    // The binary must listen where the health check and EXPOSE look.
    assert!(dockerfile.contains("COLLOQUY_BIND=0.0.0.0:8080"));
    assert!(dockerfile.contains("EXPOSE 8080"));
}

#[test]
fn compose_runs_two_replicas_on_redis_behind_the_proxy() {
    let compose = repo_file("compose.yaml");
    for service in ["  redis:", "  colloquy-1:", "  colloquy-2:", "  proxy:"] {
        assert!(
            compose.contains(&format!("\n{service}\n")),
            "{service} in compose.yaml"
        );
    }
    assert!(compose.contains("COLLOQUY_STORE: redis://redis:6379/0"));
    // The proxy's configuration is in the repository and routes to both replicas.
    let mount = "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro";
    assert!(compose.contains(mount));
    let nginx = repo_file("deploy/nginx.conf");
    for upstream in ["server colloquy-1:8080", "server colloquy-2:8080"] {
        assert!(nginx.contains(upstream), "{upstream} in deploy/nginx.conf");
    }
    assert!(
        nginx.contains("proxy_buffering off"),
        "streams pass unbuffered"
    );
    assert!(
        !nginx.contains("9090"),
        "metrics are not routed by the proxy"
    );
    // The trusted proxy network is the compose network nginx is on.
    assert!(compose.contains("COLLOQUY_TRUSTED_PROXIES: 172.28.0.0/16"));
    assert!(compose.contains("subnet: 172.28.0.0/16"));
    // The metrics port is never published.
    assert!(!compose.contains("9090:"), "metrics port published");
}
