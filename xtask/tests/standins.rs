//! The stand-ins for twoliter and cargo-make, checked against a real registry (Debian's
//! `docker-registry`), real git, lz4 and sgdisk: what they write must be what the real tools write,
//! or the xtask's own tests prove nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use support::kit_repo::{KitRepo, PACKAGES, SDK_LOCK_DIGEST};
use support::variant_repo::VariantRepo;
use support::{run, run_ok, stderr};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `docker-registry serve` on 127.0.0.1 with its storage in a temporary directory; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = support::free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                     delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry (Debian package docker-registry) must be installed");
            let mut registry = Registry { child, port, _dir: dir };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if registry.child.try_wait().unwrap().is_some() {
                    break; // port taken meanwhile: try another
                }
                if minreq::get(format!("http://127.0.0.1:{port}/v2/"))
                    .with_timeout(2)
                    .send()
                    .is_ok_and(|r| r.status_code == 200)
                {
                    return registry;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("docker-registry did not become healthy");
    }

    /// The address a project names: `localhost:<port>`.
    fn addr(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// GET a manifest: (body, Content-Type, Docker-Content-Digest), or None on 404.
    fn manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String, String)> {
        let url = format!("http://127.0.0.1:{}/v2/{repo}/manifests/{reference}", self.port);
        let r = minreq::get(url)
            .with_header("Accept", ACCEPT)
            .with_timeout(10)
            .send()
            .unwrap();
        if r.status_code == 404 {
            return None;
        }
        assert_eq!(r.status_code, 200, "{}", r.as_str().unwrap_or(""));
        let header = |h: &str| r.headers.get(h).cloned().unwrap_or_default();
        Some((
            r.as_bytes().to_vec(),
            header("content-type"),
            header("docker-content-digest"),
        ))
    }

    fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let url = format!("http://127.0.0.1:{}/v2/{repo}/blobs/{digest}", self.port);
        let r = minreq::get(url).with_timeout(10).send().unwrap();
        assert_eq!(r.status_code, 200);
        r.as_bytes().to_vec()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", support::sha256_hex(bytes))
}

/// The lock digest twoliter computes, the way it computes it (and the xtask too): serde_json's
/// `Value` written by the olpc-cjson crate's canonical formatter, SHA-256, base64. `None` when
/// the JSON cannot be written canonically (a float).
fn olpc_lock_digest(manifest: &[u8]) -> Option<String> {
    use serde::Serialize;
    let value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let mut canonical = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut canonical, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(support::sha256(&canonical)))
}

fn expected_lock_digest(manifest: &[u8]) -> String {
    olpc_lock_digest(manifest).expect("a manifest twoliter can lock")
}

/// The twoliter stand-in's own lock digest of each document (`None` where it refuses one), from
/// its `lock_digest` function.
fn standin_lock_digests(documents: &[&[u8]]) -> Vec<Option<String>> {
    let driver = "import base64, importlib.machinery, importlib.util, sys\n\
        loader = importlib.machinery.SourceFileLoader('twoliter_standin', sys.argv[1])\n\
        standin = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))\n\
        loader.exec_module(standin)\n\
        for line in sys.stdin:\n\
        \x20   try:\n\
        \x20       print(standin.lock_digest(base64.b64decode(line)))\n\
        \x20   except standin.NotCanonical as e:\n\
        \x20       print('refused', e, file=sys.stderr)\n\
        \x20       print('refused')\n";
    let input: String = documents
        .iter()
        .map(|d| base64::engine::general_purpose::STANDARD.encode(d) + "\n")
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", driver])
        .arg(support::standins_dir().join("twoliter"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| (l != "refused").then(|| l.to_string()))
        .collect()
}

#[test]
fn the_standin_lock_digest_is_twoliters_canonical_json() {
    let documents: [&[u8]; 12] = [
        // A key that is a prefix of another sorts after it when the next character is below
        // `"`: "a!" before "a"; and escaped keys sort by their escaped form.
        br#"{"a":1,"a!":2,"a\"":3,"a\\":4,"a#":5,"b":[{"z":null,"y":true,"x":false}]}"#,
        // Control characters are written raw, not as \n or \u0001.
        br#"{"k":"line\nfeed\ttab\r\u0001\u001f\b\f","\n":"key"}"#,
        // Non-ASCII as raw UTF-8, in keys too; a surrogate pair.
        "{\"\u{e9}\":\"\u{fc}\",\"\u{65e5}\u{672c}\":\"\u{8a9e}\",\"emoji\":\"\\ud83d\\ude00\"}".as_bytes(),
        // NFC: a combining accent joins its letter, in keys and values.
        br#"{"e\u0301":"cafe\u0301","A\u030a":1}"#,
        // ... but only within a fragment: not across a quote or a control character.
        br#"{"x":"e\"\u0301","y":"e\n\u0301"}"#,
        // Two keys that NFC makes one: the later in code point order wins.
        br#"{"\u00e9":"precomposed","e\u0301":"combining"}"#,
        // The solidus and DEL are not escaped.
        br#"{"p":"a\/b\u007f"}"#,
        // 64-bit integers at the edges.
        br#"{"n":18446744073709551615,"m":-9223372036854775808,"z":0}"#,
        // A repeated key keeps its last value.
        br#"{"d":1,"d":2}"#,
        // Floats are refused, by twoliter and the stand-in alike.
        br#"{"f":1.5}"#,
        br#"{"big":18446744073709551616}"#,
        // A real index.
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#,
    ];
    let expected: Vec<Option<String>> = documents.iter().map(|d| olpc_lock_digest(d)).collect();
    assert_eq!(expected[9], None, "olpc-cjson refuses floats");
    assert_eq!(expected[10], None, "serde_json reads 2^64 as a float");
    assert!(expected.iter().filter(|d| d.is_some()).count() == 10);
    assert_eq!(standin_lock_digests(&documents), expected);
}

/// The kit label of an image config: (label key, decoded JSON).
fn kit_label(config: &serde_json::Value) -> (String, serde_json::Value) {
    let labels = config["config"]["Labels"].as_object().expect("config.Labels");
    let (key, value) = labels
        .iter()
        .find(|(k, _)| k.starts_with("dev.bottlerocket.kit.v"))
        .expect("kit label");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap();
    // As rpm2kit writes it: compact JSON with sorted keys, then the newline of a here-string.
    let meta = json(&decoded);
    let mut sorted = serde_json::to_vec(&meta).unwrap();
    sorted.push(b'\n');
    assert_eq!(String::from_utf8_lossy(&decoded), String::from_utf8_lossy(&sorted));
    (key.clone(), meta)
}

/// Lock entries as (table, field) → value, via toml_edit.
fn lock_kit_field(lock: &str, kit: &str, field: &str) -> String {
    let doc: toml_edit::DocumentMut = lock.parse().unwrap();
    let kits = doc["kit"].as_array_of_tables().expect("[[kit]] in the lock");
    let entry = kits
        .iter()
        .find(|t| t["name"].as_str() == Some(kit))
        .expect("kit in the lock");
    entry[field].as_str().unwrap().to_string()
}

/// A kit repo built for `arches` and published to `registry` as vendor `local`.
fn published_kit(registry: &Registry, kit: &str, version: &str, arches: &[&str]) -> KitRepo {
    let repo = KitRepo::create(kit, version);
    repo.build_and_publish(&registry.addr(), arches);
    repo
}

fn tar_list(archive: &Path) -> Vec<String> {
    run_ok(Command::new("tar").arg("-tf").arg(archive))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn twoliter_reports_its_version() {
    let twoliter = support::standins_dir().join("twoliter");
    assert_eq!(
        run_ok(Command::new(&twoliter).arg("--version")).trim(),
        format!("twoliter {}", support::kit_repo::TWOLITER)
    );
    let out = run_ok(
        Command::new(&twoliter)
            .arg("--version")
            .env("TWOLITER_STANDIN_VERSION", "0.7.2"),
    );
    assert_eq!(out.trim(), "twoliter 0.7.2");
}

#[test]
fn kit_build_writes_an_oci_archive_named_after_the_build_id() {
    let repo = KitRepo::create("my-kit", "1.2.3");
    assert!(repo.is_clean());
    // The fixture's tracked lock is exactly what `twoliter update` writes for it.
    run_ok(&mut repo.make(&["update"]));
    assert!(repo.is_clean(), "make update changed the tracked Twoliter.lock");
    let id = repo.build_id();
    assert!(id.len() >= 7 && !id.contains("dirty"), "{id}");
    let out = run(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("Building package 'hello-agent'"),
        "{}",
        stderr(&out)
    );
    let archive = repo.archive("x86_64");
    assert!(
        archive.ends_with(format!("build/kits/my-kit/my-kit-v1.2.3-{id}-x86_64.tar")),
        "{archive:?}"
    );
    assert!(archive.is_file());
    assert!(repo.is_clean(), "a build must not dirty the tree");
    for pkg in PACKAGES {
        let dir = repo.path().join(format!("build/kits/my-kit/x86_64/Packages/{pkg}"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "{dir:?}");
    }
    assert!(repo
        .path()
        .join("build/kits/my-kit/x86_64/repodata/repomd.xml")
        .is_file());

    // A valid OCI image layout: index → manifest → config and layer, every blob named by its digest.
    let layout = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(layout.path()),
    );
    let read = |rel: &str| std::fs::read(layout.path().join(rel)).unwrap();
    let blob = |digest: &str| {
        let bytes = read(&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap()));
        assert_eq!(sha256_digest(&bytes), digest);
        bytes
    };
    assert_eq!(json(&read("oci-layout"))["imageLayoutVersion"], "1.0.0");
    let index = json(&read("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let manifest = json(&blob(index["manifests"][0]["digest"].as_str().unwrap()));
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("amd64"), Some("linux"))
    );
    let (label, meta) = kit_label(&config);
    assert_eq!(label, "dev.bottlerocket.kit.v4", "the label of twoliter 0.25 and later");
    assert_eq!(
        (meta["name"].as_str(), meta["version"].as_str()),
        (Some("my-kit"), Some("1.2.3"))
    );
    assert_eq!(meta["sdk"]["name"], "bottlerocket-sdk");
    assert_eq!(meta["kit"], serde_json::json!([]));
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    blob(layer_digest);
    let layer_path = layout.path().join(format!("blobs/sha256/{}", &layer_digest[7..]));
    let files = tar_list(&layer_path);
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("Packages/hello-agent/bottlerocket-hello-agent-1.0.0-")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f == "repodata/repomd.xml"), "{files:?}");

    // An edit to a package changes the build id and that package's rpm.
    let rpm = |repo: &KitRepo| {
        let dir = repo.path().join("build/kits/my-kit/x86_64/Packages/hello-agent");
        let entry = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap();
        std::fs::read(entry.path()).unwrap()
    };
    let before = rpm(&repo);
    let new_id = repo.edit_package("hello-agent");
    assert_ne!(new_id, id);
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(repo.archive("x86_64").to_string_lossy().contains(&new_id));
    assert_ne!(rpm(&repo), before);
}

#[test]
fn kit_build_fails_for_an_unknown_kit_and_on_request() {
    let repo = KitRepo::create("my-kit", "1.0.0");
    let out = run(&mut repo.make(&["build", "KIT=other-kit", "ARCH=x86_64"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("kits/other-kit/Cargo.toml"), "{}", stderr(&out));
    let out = run(repo
        .make(&["build", "ARCH=x86_64"])
        .env("TWOLITER_STANDIN_FAIL", "build"));
    assert!(!out.status.success());
    assert!(!repo.archive("x86_64").exists());
}

#[test]
fn a_kit_build_killed_midway_leaves_no_archive() {
    let repo = KitRepo::create("my-kit", "1.0.0");
    repo.prep();
    let mut child = repo
        .twoliter(&["build", "kit", "my-kit", "--arch", "x86_64"])
        .env("TWOLITER_STANDIN_BUILD_SECONDS", "60")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let packages = repo.path().join("build/kits/my-kit/x86_64/Packages");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !packages.join(PACKAGES[1]).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(packages.join(PACKAGES[1]).exists(), "the build never got going");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!repo.archive("x86_64").exists());
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(repo.archive("x86_64").is_file());
}

#[test]
fn kit_publish_pushes_per_arch_images_and_an_index() {
    let registry = Registry::start();
    let repo = published_kit(&registry, "my-kit", "1.2.3", &["x86_64", "aarch64"]);
    let id = repo.build_id();

    let (body, content_type, _) = registry.manifest("my-kit", "v1.2.3").expect("index v1.2.3");
    assert_eq!(content_type, OCI_INDEX);
    let index = json(&body);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let mut platforms = vec![];
    for entry in index["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap().to_string();
        assert_eq!(entry["platform"]["os"], "linux");
        let tag_arch = if arch == "amd64" { "x86_64" } else { "aarch64" };
        let (manifest, _, digest) = registry
            .manifest("my-kit", &format!("v1.2.3-{id}-{tag_arch}"))
            .expect("per-arch tag");
        assert_eq!(entry["digest"].as_str().unwrap(), digest);
        let config = json(&registry.blob("my-kit", json(&manifest)["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["architecture"].as_str().unwrap(), arch);
        let (_, meta) = kit_label(&config);
        assert_eq!(
            (meta["name"].as_str(), meta["version"].as_str()),
            (Some("my-kit"), Some("1.2.3"))
        );
        platforms.push(arch);
    }
    platforms.sort();
    assert_eq!(platforms, ["amd64", "arm64"]);

    // Tags are mutable: a rebuilt kit published again replaces the index.
    repo.edit_package("hello-config");
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    run_ok(&mut repo.make(&["publish", "VENDOR=local"]));
    let (body, _, _) = registry.manifest("my-kit", "v1.2.3").unwrap();
    assert_ne!(json(&body), index);
    assert_eq!(
        json(&body)["manifests"].as_array().unwrap().len(),
        1,
        "only the arch built for this build id"
    );
}

#[test]
fn publish_reads_infra_toml_like_twoliter() {
    let repo = KitRepo::create("my-kit", "1.0.0");
    repo.prep();
    let publish = |vendor: &str| {
        let out = run(&mut repo.make(&["publish", &format!("VENDOR={vendor}")]));
        assert!(!out.status.success());
        stderr(&out)
    };
    std::fs::write(repo.path().join("Infra.toml"), "[repo.default]\n").unwrap();
    assert!(publish("local").contains("No vendors specified in Infra.toml"));
    repo.write_infra("other", "localhost:1");
    assert!(publish("local").contains("Vendor 'local' not specified in Infra.toml"));
    // Infra.lock silently wins over Infra.toml.
    repo.write_infra("local", "localhost:1");
    std::fs::write(
        repo.path().join("Infra.lock"),
        "[vendor.other]\nregistry = \"localhost:1\"\n",
    )
    .unwrap();
    assert!(publish("local").contains("Vendor 'local' not specified in Infra.toml"));
    assert!(repo.is_clean(), "Infra.toml and Infra.lock are ignored");
}

#[test]
fn publish_after_an_uncommitted_edit_names_the_archive_it_expected() {
    let repo = KitRepo::create("my-kit", "1.0.0");
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    let built = repo.archive("x86_64");
    repo.write_infra("local", "localhost:1");
    repo.touch_package("hello-agent");
    let id = repo.build_id();
    assert!(id.ends_with("-dirty"), "{id}");
    let out = run(&mut repo.make(&["publish", "VENDOR=local"]));
    assert!(!out.status.success());
    assert!(built.is_file());
    assert!(
        stderr(&out).contains(&format!("build/kits/my-kit/my-kit-v1.0.0-{id}-x86_64.tar")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn update_locks_the_served_index_under_the_original_source() {
    let registry = Registry::start();
    published_kit(&registry, "my-kit", "1.2.3", &["x86_64"]);
    let variant = VariantRepo::create("aws-dev", &[("my-kit", "1.2.3")], "1.30.0");

    // Without an override the kit is looked for upstream, which no test can reach.
    let out = run(&mut variant.twoliter(&["update"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failed to fetch public.ecr.aws/bottlerocket/my-kit:v1.2.3"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));

    variant.write_override(&["my-kit"], &registry.addr());
    run_ok(&mut variant.twoliter(&["update"]));
    let lock = variant.lock();
    let (index, _, _) = registry.manifest("my-kit", "v1.2.3").unwrap();
    assert_eq!(lock_kit_field(&lock, "my-kit", "digest"), expected_lock_digest(&index));
    assert_eq!(
        lock_kit_field(&lock, "my-kit", "source"),
        "public.ecr.aws/bottlerocket/my-kit:v1.2.3"
    );
    assert_eq!(lock_kit_field(&lock, "my-kit", "vendor"), "bottlerocket");
    let doc: toml_edit::DocumentMut = lock.parse().unwrap();
    assert_eq!(doc["schema-version"].as_integer(), Some(2));
    assert_eq!(doc["project-vendor"].as_str(), Some("Bottlerocket"));
    assert_eq!(
        doc["sdk"]["digest"].as_str(),
        Some(SDK_LOCK_DIGEST),
        "the SDK entry is kept"
    );

    // fetch extracts the arch's image and records the per-arch manifest's registry digest.
    run_ok(&mut variant.twoliter(&["fetch", "--arch", "x86_64"]));
    let fetched = variant.path().join("build/external-kits/bottlerocket/my-kit/x86_64");
    let amd64 = json(&index)["manifests"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(fetched.join("digest")).unwrap(), amd64);
    assert!(fetched.join("repodata/repomd.xml").is_file());
    assert_eq!(
        std::fs::read_dir(fetched.join("Packages")).unwrap().count(),
        PACKAGES.len()
    );
    let out = run(&mut variant.twoliter(&["fetch", "--arch", "aarch64"]));
    assert!(!out.status.success(), "the kit was published for x86_64 only");
}

#[test]
fn fetch_refuses_a_kit_republished_after_update() {
    let registry = Registry::start();
    let kit = published_kit(&registry, "my-kit", "1.2.3", &["x86_64"]);
    let variant = VariantRepo::create("aws-dev", &[("my-kit", "1.2.3")], "1.30.0");
    variant.write_override(&["my-kit"], &registry.addr());
    run_ok(&mut variant.twoliter(&["update"]));
    run_ok(&mut variant.cargo_make("x86_64"));
    assert!(variant.images_dir("x86_64").join("latest").exists());

    kit.edit_package("hello-agent");
    run_ok(&mut kit.make(&["build", "ARCH=x86_64"]));
    run_ok(&mut kit.make(&["publish", "VENDOR=local"]));
    let out = run(&mut variant.twoliter(&["fetch", "--arch", "x86_64"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("require an update to Twoliter.lock"),
        "{}",
        stderr(&out)
    );
    // The variant build fails the same way, and leaves no `latest` behind.
    let out = run(&mut variant.cargo_make("x86_64"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("require an update to Twoliter.lock"),
        "{}",
        stderr(&out)
    );
    assert!(!variant.images_dir("x86_64").join("latest").exists());

    run_ok(&mut variant.twoliter(&["update"]));
    run_ok(&mut variant.twoliter(&["fetch", "--arch", "x86_64"]));
}

#[test]
fn update_rejects_project_files_twoliter_rejects() {
    let variant = VariantRepo::create("aws-dev", &[("my-kit", "1.2.3")], "1.30.0");
    let update_error = || {
        let out = run(&mut variant.twoliter(&["update"]));
        assert!(!out.status.success());
        stderr(&out)
    };
    let override_path = variant.path().join("Twoliter.override");
    std::fs::write(&override_path, "[local]\nregistry = \"localhost:5000\"\n").unwrap();
    assert!(update_error().contains("failed to deserialize overrides file"));
    std::fs::write(&override_path, "[bottlerocket.my-kit\n").unwrap();
    assert!(update_error().contains("failed to deserialize overrides file"));
    std::fs::remove_file(&override_path).unwrap();

    let toml_path = variant.path().join("Twoliter.toml");
    let original = std::fs::read_to_string(&toml_path).unwrap();
    let kit_vendor = "version = \"1.2.3\" # the kit's release\nvendor = \"bottlerocket\"";
    assert!(original.contains(kit_vendor));
    std::fs::write(
        &toml_path,
        original.replace(kit_vendor, "version = \"1.2.3\"\nvendor = \"local\""),
    )
    .unwrap();
    assert!(update_error().contains("cannot define a dependency on a vendor that is not specified in Twoliter.toml"));
    // An inline array is read like `[[kit]]` tables (it has to come before the first table): the
    // update gets as far as fetching the kit from upstream, which no test can reach.
    let inline = original.split("\n# Kit my-kit").next().unwrap().replace(
        "# Where the vendor's",
        "kit = [{ name = \"my-kit\", version = \"1.2.3\", vendor = \"bottlerocket\" }]\n\n# Where the vendor's",
    );
    std::fs::write(&toml_path, inline).unwrap();
    assert!(update_error().contains("failed to fetch public.ecr.aws/bottlerocket/my-kit:v1.2.3"));
    std::fs::write(
        &toml_path,
        original.replace("schema-version = 2", "schema-version = 2\nlocal-kits = true"),
    )
    .unwrap();
    assert!(update_error().contains("unknown field `local-kits`"));
    // Schema 2 requires project-vendor; schema 1 has none (twoliter 0.12 and later read both).
    std::fs::write(&toml_path, original.replace("project-vendor = \"Bottlerocket\"\n", "")).unwrap();
    assert!(update_error().contains("missing field `project-vendor`"));
    std::fs::write(&toml_path, original.replace("schema-version = 2", "schema-version = 1")).unwrap();
    assert!(update_error().contains("unknown field `project-vendor`"));
    let schema_1 = original
        .replace("schema-version = 2", "schema-version = 1")
        .replace("project-vendor = \"Bottlerocket\"\n", "");
    std::fs::write(&toml_path, schema_1).unwrap();
    assert!(update_error().contains("failed to fetch public.ecr.aws/bottlerocket/my-kit:v1.2.3"));
}

#[test]
fn a_lock_of_an_older_schema_fails_every_command_but_update() {
    // twoliter 0.12 and later write schema-version 2 and load nothing else.
    let repo = KitRepo::create("my-kit", "1.0.0");
    let lock = repo.path().join("Twoliter.lock");
    let current = std::fs::read_to_string(&lock).unwrap();
    assert!(current.starts_with("schema-version = 2\nkit = []\nproject-vendor = \"Bottlerocket\"\n"));
    std::fs::write(
        &lock,
        current
            .replace("schema-version = 2", "schema-version = 1")
            .replace("project-vendor = \"Bottlerocket\"\n", ""),
    )
    .unwrap();
    let out = run(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failed to deserialize lockfile")
            && stderr(&out).contains("Incorrect project schema_version: got '1', expected '2'"),
        "{}",
        stderr(&out)
    );
    run_ok(&mut repo.make(&["update"]));
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), current);
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));

    // And a twoliter before 0.12 writes and reads schema 1.
    let old = KitRepo::create_pinned("old-kit", "1.0.0", "0.7.2");
    let text = std::fs::read_to_string(old.path().join("Twoliter.lock")).unwrap();
    assert!(text.starts_with("schema-version = 1\nkit = []\n\n[sdk]"), "{text}");
    run_ok(&mut old.make(&["update"]));
    assert!(old.is_clean(), "the old lock is what twoliter 0.7.2 writes");
    run_ok(&mut old.make(&["build", "ARCH=x86_64"]));
}

#[test]
fn kits_of_another_twoliter_generation_are_refused() {
    let registry = Registry::start();
    // A kit repo that pins twoliter 0.7.2: its `make prep` installs that version.
    let kit = KitRepo::create_pinned("old-kit", "0.1.0", "0.7.2");
    kit.build_and_publish(&registry.addr(), &["x86_64"]);
    assert_eq!(run_ok(&mut kit.twoliter(&["--version"])).trim(), "twoliter 0.7.2");
    let variant = VariantRepo::create("aws-dev", &[("old-kit", "0.1.0")], "1.30.0");
    variant.write_override(&["old-kit"], &registry.addr());
    let out = run(&mut variant.twoliter(&["update"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kit appears to be built with metadata version v2"),
        "{}",
        stderr(&out)
    );
}

fn decompress(lz4_file: &Path, dir: &Path) -> PathBuf {
    run_ok(Command::new("lz4").arg("-t").arg(lz4_file));
    let out = dir.join(lz4_file.file_name().unwrap()).with_extension("");
    run_ok(Command::new("lz4").args(["-d", "-f", "-q"]).arg(lz4_file).arg(&out));
    out
}

#[test]
fn cargo_make_builds_a_gpt_disk_image_from_the_fetched_kits() {
    let registry = Registry::start();
    published_kit(&registry, "my-kit", "1.2.3", &["x86_64"]);
    let variant = VariantRepo::create("metal-dev", &[("my-kit", "1.2.3")], "1.30.0");
    variant.write_override(&["my-kit"], &registry.addr());
    run_ok(&mut variant.twoliter(&["update"]));
    run_ok(&mut variant.cargo_make("x86_64"));

    let id = variant.build_id();
    let images = variant.images_dir("x86_64");
    let latest = images.join("latest");
    assert_eq!(
        std::fs::read_link(&latest).unwrap(),
        PathBuf::from(format!("1.30.0-{id}"))
    );
    let stem = "bottlerocket-metal-dev-x86_64";
    let disk = latest.join(format!("{stem}-1.30.0-{id}.img.lz4"));
    for friendly in [format!("{stem}.img.lz4"), format!("{stem}-v1.30.0.img.lz4")] {
        assert_eq!(
            std::fs::canonicalize(latest.join(friendly)).unwrap(),
            std::fs::canonicalize(&disk).unwrap()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = decompress(&disk, tmp.path());
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 64 << 20);
    let table = run_ok(Command::new("sgdisk").arg("-p").arg(&raw));
    for name in [
        "BOTTLEROCKET-EFI-A",
        "BOTTLEROCKET-ROOT-A",
        "BOTTLEROCKET-ROOT-B",
        "BOTTLEROCKET-PRIVATE",
        "BOTTLEROCKET-DATA",
    ] {
        assert!(table.contains(name), "{name} missing:\n{table}");
    }
    assert!(!latest.join(format!("{stem}-1.30.0-{id}-data.img.lz4")).exists());
    let inventory = json(&std::fs::read(latest.join("application-inventory.json")).unwrap());
    let names: Vec<&str> = inventory["Content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, PACKAGES);
    let log = std::fs::read_to_string(variant.path().join("build/cargo-make-standin.log")).unwrap();
    let entry = json(log.lines().last().unwrap().as_bytes());
    assert_eq!(
        (entry["BUILDSYS_VARIANT"].as_str(), entry["BUILDSYS_ARCH"].as_str()),
        (Some("metal-dev"), Some("x86_64"))
    );

    // The split partition plan moves DATA to its own disk.
    variant.use_split_partition_plan();
    run_ok(&mut variant.cargo_make("x86_64"));
    let id = variant.build_id();
    let os = decompress(&latest.join(format!("{stem}-1.30.0-{id}.img.lz4")), tmp.path());
    assert!(!run_ok(Command::new("sgdisk").arg("-p").arg(&os)).contains("BOTTLEROCKET-DATA"));
    let data = decompress(&latest.join(format!("{stem}-1.30.0-{id}-data.img.lz4")), tmp.path());
    assert!(run_ok(Command::new("sgdisk").arg("-p").arg(&data)).contains("BOTTLEROCKET-DATA"));

    // Called directly as cargo runs it; a failing build leaves no `latest`.
    let out = run(Command::new(support::standins_dir().join("cargo-make"))
        .args(["make", "-e", "BUILDSYS_VARIANT=metal-dev", "-e", "BUILDSYS_ARCH=x86_64"])
        .current_dir(variant.path())
        .env("CARGO_MAKE_STANDIN_FAIL", "1"));
    assert!(!out.status.success());
    assert!(!latest.exists());
}

#[test]
fn a_kit_built_with_another_sdk_is_refused() {
    let registry = Registry::start();
    published_kit(&registry, "my-kit", "1.2.3", &["x86_64"]);
    let variant = VariantRepo::create("aws-dev", &[("my-kit", "1.2.3")], "1.30.0");
    variant.write_override(&["my-kit"], &registry.addr());
    let toml_path = variant.path().join("Twoliter.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let sdk_line = format!("version = \"{}\"", support::kit_repo::SDK_VERSION);
    std::fs::write(&toml_path, text.replacen(&sdk_line, "version = \"0.99.0\"", 1)).unwrap();
    let out = run(&mut variant.twoliter(&["update"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot use multiple sdks"), "{}", stderr(&out));
}

#[test]
fn kits_named_by_a_kit_are_locked_and_redirected_too() {
    let registry = Registry::start();
    published_kit(&registry, "base-kit", "1.0.0", &["x86_64"]);

    // app-kit depends on base-kit: its own lock names base-kit, and its build carries that in its label.
    let app = KitRepo::create("app-kit", "2.0.0");
    let toml_path = app.path().join("Twoliter.toml");
    let mut text = std::fs::read_to_string(&toml_path).unwrap();
    text.push_str("\n[[kit]]\nname = \"base-kit\"\nversion = \"1.0.0\"\nvendor = \"bottlerocket\"\n");
    std::fs::write(&toml_path, text).unwrap();
    std::fs::write(
        app.path().join("Twoliter.override"),
        format!("[bottlerocket.base-kit]\nregistry = \"{}\"\n", registry.addr()),
    )
    .unwrap();
    run_ok(&mut app.make(&["update"]));
    support::git(app.path(), &["commit", "-q", "-am", "Depend on base-kit"]);
    run_ok(&mut app.make(&["build", "ARCH=x86_64"]));
    assert!(app
        .path()
        .join("build/external-kits/bottlerocket/base-kit/x86_64/digest")
        .is_file());
    app.write_infra("local", &registry.addr());
    run_ok(&mut app.make(&["publish", "VENDOR=local"]));

    // The variant names only app-kit; base-kit comes in through app-kit's metadata, and the
    // override redirects it as well.
    let variant = VariantRepo::create("aws-dev", &[("app-kit", "2.0.0")], "1.30.0");
    variant.write_override(&["app-kit", "base-kit"], &registry.addr());
    run_ok(&mut variant.twoliter(&["update"]));
    let lock = variant.lock();
    let (base_index, _, _) = registry.manifest("base-kit", "v1.0.0").unwrap();
    assert_eq!(
        lock_kit_field(&lock, "base-kit", "digest"),
        expected_lock_digest(&base_index)
    );
    assert_eq!(
        lock_kit_field(&lock, "base-kit", "source"),
        "public.ecr.aws/bottlerocket/base-kit:v1.0.0"
    );
    run_ok(&mut variant.twoliter(&["fetch", "--arch", "x86_64"]));
    for kit in ["app-kit", "base-kit"] {
        let dir = variant
            .path()
            .join(format!("build/external-kits/bottlerocket/{kit}/x86_64"));
        assert!(dir.join("digest").is_file(), "{kit} not fetched");
    }
}

#[test]
fn cargo_make_names_image_directories_with_the_repos_own_build_id() {
    let variant = VariantRepo::create("aws-dev", &[], "1.30.0");
    let latest = variant.images_dir("x86_64").join("latest");
    let built = || {
        run_ok(&mut variant.cargo_make("x86_64"));
        let target = std::fs::read_link(&latest).unwrap().to_string_lossy().into_owned();
        target.strip_prefix("1.30.0-").unwrap().to_string()
    };
    // bottlerocket's Makefile.toml passes no --abbrev: git's default, 7 in a small repo.
    let id = built();
    assert_eq!((id.len(), id.clone()), (7, variant.build_id()));
    support::git(variant.path(), &["config", "core.abbrev", "9"]);
    assert_eq!(built().len(), 9);
    // A Makefile.toml that asks for a length gets it.
    let path = variant.path().join("Makefile.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("--exclude '*' ||", "--exclude '*' --abbrev=8 ||")).unwrap();
    support::git(variant.path(), &["commit", "-q", "-am", "Build ids of 8 characters"]);
    assert_eq!(built().len(), 8);
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Sets a file's modification time to now, as `touch` does.
fn touch(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
}

#[test]
fn kit_builds_are_incremental_like_buildsys() {
    let repo = KitRepo::create("my-kit", "1.0.0");
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    let first = repo.archive("x86_64");
    let bytes = std::fs::read(&first).unwrap();
    let stamp = modified(&first);
    let notes = repo.path().join("build/kits/my-kit/notes.txt");
    std::fs::write(&notes, "not buildsys's").unwrap();

    // Nothing it watches changed: nothing is written.
    std::thread::sleep(Duration::from_millis(20));
    let out = run(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("is up to date: nothing was built"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (std::fs::read(&first).unwrap(), modified(&first)),
        (bytes.clone(), stamp)
    );
    // A missing archive does not count (cargo does not watch outputs) ...
    std::fs::rename(&first, first.with_extension("gone")).unwrap();
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(!first.exists());
    std::fs::rename(first.with_extension("gone"), &first).unwrap();
    // ... but a touched kit Cargo.toml does.
    touch(&repo.path().join("kits/my-kit/Cargo.toml"));
    let out = run(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(stderr(&out).contains("Building kit 'my-kit'"), "{}", stderr(&out));
    assert_ne!(modified(&first), stamp);

    // A new build id: the archive of the old one goes, other arches' and other files stay.
    run_ok(&mut repo.make(&["build", "ARCH=aarch64"]));
    let other_arch = repo.archive("aarch64");
    repo.edit_package("hello-agent");
    run_ok(&mut repo.make(&["build", "ARCH=x86_64"]));
    assert!(repo.archive("x86_64").is_file());
    assert!(!first.exists(), "the archive of the previous build id was deleted");
    assert!(other_arch.is_file() && notes.is_file());
}

#[test]
fn variant_builds_are_incremental_like_buildsys() {
    let variant = VariantRepo::create("aws-dev", &[], "1.30.0");
    let latest = variant.images_dir("x86_64").join("latest");
    run_ok(&mut variant.cargo_make("x86_64"));
    let first = variant.images_dir("x86_64").join(std::fs::read_link(&latest).unwrap());
    let disk = std::fs::read_dir(&first)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.is_symlink() && p.to_string_lossy().ends_with(".img.lz4"))
        .unwrap();
    let stamp = modified(&disk);

    // Nothing changed: the images stay as they are and `latest` is linked again.
    std::thread::sleep(Duration::from_millis(20));
    let out = run(&mut variant.cargo_make("x86_64"));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("is up to date: nothing was built"),
        "{}",
        stderr(&out)
    );
    assert_eq!(modified(&disk), stamp);
    assert_eq!(
        variant.images_dir("x86_64").join(std::fs::read_link(&latest).unwrap()),
        first
    );

    // Images that went missing are not built again: `latest` names a directory that is gone...
    std::fs::rename(&first, first.with_extension("gone")).unwrap();
    run_ok(&mut variant.cargo_make("x86_64"));
    assert!(std::fs::symlink_metadata(&latest).is_ok() && !latest.exists());
    std::fs::rename(first.with_extension("gone"), &first).unwrap();
    // ... until the variant's Cargo.toml is touched.
    touch(&variant.path().join("variants/aws-dev/Cargo.toml"));
    run_ok(&mut variant.cargo_make("x86_64"));
    assert_ne!(modified(&disk), stamp);

    // A new build id: the images of the old one go.
    support::git(variant.path(), &["commit", "-q", "--allow-empty", "-m", "Next"]);
    run_ok(&mut variant.cargo_make("x86_64"));
    let second = variant.images_dir("x86_64").join(std::fs::read_link(&latest).unwrap());
    assert_ne!(second, first);
    assert!(second.is_dir() && !first.exists());
}
