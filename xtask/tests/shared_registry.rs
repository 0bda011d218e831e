//! A team's shared registry: HTTPS with a team CA, credentials from the docker config (auths or a
//! credential helper), Bearer tokens, immutable tags. The registry runs on this machine
//! (`support::tls_registry`), addressed as twoliter names a shared one: `localhost:<port>/team`.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::kit_repo::KitRepo;
use support::tls_registry::{self, TlsRegistry, PASSWORD};
use support::variant_repo::VariantRepo;

const KIT: &str = "core-kit";
const KIT_VERSION: &str = "2.3.4";
const VARIANT: &str = "aws-dev";

/// The xtask acting for `root`, with `DOCKER_CONFIG` and the helper directory on PATH.
fn xtask(root: &Path, docker_config: &Path, extra_path: &[&Path]) -> Command {
    let mut cmd = support::xtask(root, extra_path);
    cmd.env("DOCKER_CONFIG", docker_config).env_remove("SSL_CERT_FILE");
    cmd
}

fn check(root: &Path, docker_config: &Path, registry: &str, extra: &[&str]) -> (bool, Value, String) {
    let output = support::run(
        xtask(root, docker_config, &[])
            .args(["registry", "check", registry, "--json"])
            .args(extra),
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("--json prints one object");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        support::stderr(&output)
    );
    assert!(!text.contains(PASSWORD), "a password was printed: {text}");
    (output.status.success(), report, text)
}

fn failed_step(report: &Value) -> (String, String) {
    let step = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ok"] == false)
        .unwrap_or_else(|| panic!("no step failed: {report}"));
    (
        step["step"].as_str().unwrap().to_string(),
        step["detail"].as_str().unwrap().to_string(),
    )
}

/// The `SSL_CERT_FILE` bundle `twoliter publish` was given, from the stand-in's environment log.
fn publish_bundle(env_log: &Path) -> String {
    let envs = support::recorded_envs(env_log);
    let (_, env) = envs
        .iter()
        .find(|(argv, _)| argv.first().map(String::as_str) == Some("publish"))
        .expect("twoliter publish ran");
    let file = env
        .get("SSL_CERT_FILE")
        .expect("twoliter publish was given SSL_CERT_FILE");
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn registry_check_names_each_failure_and_its_fix() {
    let registry = TlsRegistry::start();
    let root = tempfile::tempdir().unwrap();
    let address = registry.address();

    // The team CA is not trusted yet: the certificate error names --ca-file.
    let (ok, report, _) = check(root.path(), &registry.good_config(), &address, &[]);
    assert!(!ok);
    let (step, detail) = failed_step(&report);
    assert_eq!(step, "tls", "{report}");
    assert!(
        detail.contains("--ca-file") && detail.contains("SSL_CERT_FILE"),
        "{detail}"
    );
    assert!(!detail.contains("plain HTTP"), "{detail}");

    // With the CA (remembered from now on) but a wrong password: 401 names docker login.
    let ca = registry.ca();
    let (ok, report, _) = check(
        root.path(),
        &registry.wrong_config(),
        &address,
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert!(!ok);
    let (step, detail) = failed_step(&report);
    assert_eq!(step, "credentials", "{report}");
    assert!(
        detail.contains(&format!("docker login localhost:{}", registry.port)),
        "{detail}"
    );
    assert_eq!(report["scheme"], "https");
    assert_eq!(report["auth"], "basic");

    // The right password, the CA remembered: every step passes.
    let (ok, report, _) = check(root.path(), &registry.good_config(), &address, &[]);
    assert!(ok, "{report}");
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["dns", "tcp", "tls", "api", "auth", "credentials"]);
    assert!(report["credentials"].as_str().unwrap().contains("`auths`"), "{report}");
    assert!(report["ca_file"].as_str().is_some(), "{report}");

    // By IP: the certificate names 127.0.0.1 too, and the docker config is keyed by that host.
    let by_ip = root.path().join("docker-ip");
    tls_registry::write_auths(
        &by_ip,
        &format!("127.0.0.1:{}", registry.port),
        tls_registry::USER,
        PASSWORD,
    );
    let (ok, report, _) = check(
        root.path(),
        &by_ip,
        &format!("127.0.0.1:{}/team", registry.port),
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert!(ok, "{report}");
    assert_eq!(report["scheme"], "https");

    // A credential helper on PATH gives them as well.
    let output = support::run(
        xtask(root.path(), &registry.helper_config(), &[&registry.helper_bin()]).args(["registry", "check", &address]),
    );
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("docker-credential-test"), "{text}");
    assert!(!text.contains(PASSWORD));

    // Nothing listens: the connection step says so.
    let nothing = support::free_port();
    let (ok, report, _) = check(
        root.path(),
        &registry.good_config(),
        &format!("localhost:{nothing}/team"),
        &[],
    );
    assert!(!ok);
    let (step, detail) = failed_step(&report);
    assert_eq!(step, "tcp", "{report}");
    assert!(detail.contains("nothing accepts connections"), "{detail}");

    // A scheme is refused with the form twoliter takes.
    let output = support::run(xtask(root.path(), &registry.good_config(), &[]).args([
        "registry",
        "check",
        &format!("https://{address}"),
    ]));
    assert!(!output.status.success());
    assert!(support::stderr(&output).contains("host[:port][/namespace]"));
}

#[test]
fn bearer_tokens_come_from_the_realm_with_the_docker_config_credentials() {
    let port = tls_registry::bearer_stub();
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("docker");
    tls_registry::write_auths(&config, &format!("localhost:{port}"), tls_registry::USER, PASSWORD);
    let address = format!("localhost:{port}/team");
    let (ok, report, _) = check(root.path(), &config, &address, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["scheme"], "http", "a loopback registry without TLS: {report}");
    assert_eq!(report["auth"], format!("bearer http://127.0.0.1:{port}/token").as_str());

    // Without credentials the token service refuses, and the fix is named.
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, report, _) = check(root.path(), &empty, &address, &[]);
    assert!(!ok);
    let (step, detail) = failed_step(&report);
    assert_eq!(step, "credentials", "{report}");
    assert!(detail.contains("docker login"), "{detail}");

    // A variant's UPDATE_CONFIG lists the tags through the token as well: the versions are found.
    let variant = VariantRepo::create(VARIANT, &[(KIT, "1.0.0")], "1.26.1");
    let output = support::run(
        xtask(variant.path(), &config, &[variant.bin_dir()])
            .envs(variant.env())
            .args(["variant", "--arch", "x86_64", "--kit", KIT, "--registry", &address]),
    );
    // The stub serves tags but no manifests, so the run stops once a manifest is needed; it got
    // that far (the highest tag found) only with the token.
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(err.contains("core-kit:v1.2.0"), "{err}");
    assert!(!err.contains("401") && !err.contains("docker login"), "{err}");
}

#[test]
fn a_kit_is_published_to_and_a_variant_built_from_a_tls_registry_with_credentials() {
    let registry = TlsRegistry::start();
    let address = registry.address();
    let tmp = tempfile::tempdir().unwrap();
    let kit = KitRepo::create_at(&tmp.path().join("kits").join(KIT), KIT, KIT_VERSION);
    kit.prep();
    let env_log = tmp.path().join("twoliter-env.jsonl");

    let out = support::run_ok(
        xtask(kit.path(), &registry.good_config(), &[])
            .envs(kit.env())
            .env("TWOLITER_STANDIN_ENV_LOG", &env_log)
            .args(["build-kit", "--arch", "x86_64", "--json", "--registry", &address])
            .args(["--ca-file", registry.ca().to_str().unwrap()]),
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["verified"]["registry"], address.as_str());
    let infra = std::fs::read_to_string(kit.path().join("Infra.toml")).unwrap();
    assert!(infra.contains(&format!("registry = \"{address}\"")), "{infra}");
    // twoliter was given the bundle of system roots and the team CA, never the CA alone.
    let bundle = publish_bundle(&env_log);
    let ca = std::fs::read_to_string(registry.ca()).unwrap();
    assert!(bundle.contains(ca.trim()));
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 1,
        "the system roots are kept"
    );
    // The registry holds the kit under the namespace (as the registry's own log shows).
    assert!(registry.log().contains("/v2/team/core-kit/manifests/v2.3.4"));

    // The variant takes it from there. Each checkout remembers its own CAs: this one is given
    // --ca-file as well.
    let variant = VariantRepo::create_at(&tmp.path().join("bottlerocket"), VARIANT, &[(KIT, "2.0.0")], "1.26.1");
    let before = support::snapshot(variant.path());
    let out = support::run_ok(
        xtask(variant.path(), &registry.good_config(), &[variant.bin_dir()])
            .envs(variant.env())
            .args(["variant", "--arch", "x86_64", "--json", "--registry", &address])
            .args(["--kit", &format!("{KIT}@{KIT_VERSION}")])
            .args(["--ca-file", registry.ca().to_str().unwrap()]),
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let after: std::collections::BTreeMap<_, _> = support::snapshot(variant.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("build") && !p.starts_with("planning"))
        .collect();
    let before: std::collections::BTreeMap<_, _> = before
        .into_iter()
        .filter(|(p, _)| !p.starts_with("build") && !p.starts_with("planning"))
        .collect();
    assert_eq!(after, before, "the variant repo is restored byte for byte");

    // No credential was written anywhere: workspaces, logs, reports, state.
    for root in [tmp.path(), variant.path(), kit.path()] {
        for (path, bytes) in support::snapshot(root) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(PASSWORD), "{} holds the password", path.display());
        }
    }
}

/// A variant's other kits may come from another team registry than the one a run uses: every CA
/// remembered in the checkout reaches twoliter, in one bundle with the system roots, even when
/// the run itself publishes to the local registry.
#[test]
fn every_remembered_ca_reaches_twoliter_even_with_the_local_registry() {
    let (first, second) = (TlsRegistry::start(), TlsRegistry::start());
    let tmp = tempfile::tempdir().unwrap();
    let kit = KitRepo::create_at(&tmp.path().join(KIT), KIT, KIT_VERSION);
    kit.prep();
    let local = support::registry::TestRegistry::start_native(kit.path());
    for registry in [&first, &second] {
        let ca = registry.ca();
        let (ok, report, _) = check(
            kit.path(),
            &registry.good_config(),
            &registry.address(),
            &["--ca-file", ca.to_str().unwrap()],
        );
        assert!(ok, "{report}");
    }
    // One process speaks to both: each CA is in the bundle the other's check activates.
    for registry in [&first, &second] {
        let (ok, report, _) = check(kit.path(), &registry.good_config(), &registry.address(), &[]);
        assert!(ok, "{report}");
    }
    // `registry status` names them, and how to forget one.
    let status: Value = serde_json::from_str(&support::run_ok(
        xtask(kit.path(), &first.good_config(), &[]).args(["registry", "status", "--json"]),
    ))
    .unwrap();
    let cas: Vec<&str> = status["team_cas"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|ca| ca.as_str().unwrap())
        .collect();
    assert_eq!(cas.len(), 2, "{status}");
    for registry in [&first, &second] {
        let key = format!("localhost_{}_team.ca.pem", registry.port);
        let ca = cas
            .iter()
            .find(|ca| ca.ends_with(&key))
            .unwrap_or_else(|| panic!("{status}"));
        assert_eq!(
            std::fs::read_to_string(ca).unwrap(),
            std::fs::read_to_string(registry.ca()).unwrap()
        );
    }
    let text = support::run_ok(xtask(kit.path(), &first.good_config(), &[]).args(["registry", "status"]));
    assert!(
        text.contains("team CAs:") && text.contains("delete one to forget it"),
        "{text}"
    );

    let env_log = tmp.path().join("twoliter-env.jsonl");
    let out = support::run_ok(
        xtask(kit.path(), &first.good_config(), &[])
            .envs(kit.env())
            .env("TWOLITER_STANDIN_ENV_LOG", &env_log)
            .args(["build-kit", "--arch", "x86_64", "--json"]),
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["verified"]["registry"], local.url().as_str(), "{summary}");
    let bundle = publish_bundle(&env_log);
    for registry in [&first, &second] {
        let ca = std::fs::read_to_string(registry.ca()).unwrap();
        assert!(
            bundle.contains(ca.trim()),
            "the CA of {} is trusted",
            registry.address()
        );
    }
    assert!(
        bundle.matches("BEGIN CERTIFICATE").count() > 2,
        "the system roots are kept"
    );
}

#[test]
fn an_immutable_tag_refusal_names_the_tag_and_the_fix() {
    let port = tls_registry::immutable_stub();
    let tmp = tempfile::tempdir().unwrap();
    let kit = KitRepo::create_at(&tmp.path().join("kits").join(KIT), KIT, KIT_VERSION);
    kit.prep();
    let empty = tmp.path().join("docker");
    std::fs::create_dir_all(&empty).unwrap();
    let address = format!("127.0.0.1:{port}/team");
    let output = support::run(xtask(kit.path(), &empty, &[]).envs(kit.env()).args([
        "build-kit",
        "--arch",
        "x86_64",
        "--registry",
        &address,
    ]));
    assert!(!output.status.success());
    let err = support::stderr(&output);
    assert!(err.contains("immutable"), "{err}");
    assert!(err.contains(&format!("{KIT} v{KIT_VERSION}")), "{err}");
    assert!(
        err.contains("release-version") && err.contains("delete the tags"),
        "{err}"
    );
}
