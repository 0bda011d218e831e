//! `cargo xtask adopt` on fixture repos shaped like the real ones: a kit repo and a variant repo
//! with their `.gitignore` (`/.cargo` ignored), a root Cargo workspace whose tracked `Cargo.lock`
//! must still resolve `--offline --locked`, `Twoliter.toml` and `Makefile`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::kit_repo::KitRepo;
use support::variant_repo::VariantRepo;

const ALIAS_CONFIG: &str = "[alias]\nxtask = \"run --quiet --manifest-path xtask/Cargo.toml --\"\n";

struct Forest {
    root: PathBuf,
    kit: KitRepo,
    variant: VariantRepo,
    _tmp: tempfile::TempDir,
}

fn forest() -> Forest {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("forest");
    let kit = KitRepo::create_at(&root.join("kits/core-kit"), "core-kit", "2.3.4");
    let variant = VariantRepo::create_at(
        &root.join("bottlerocket"),
        "aws-dev",
        &[("core-kit", "2.0.0")],
        "1.26.1",
    );
    Forest {
        root,
        kit,
        variant,
        _tmp: tmp,
    }
}

/// `cargo xtask adopt <target>`, run from this checkout.
fn adopt(target: &Path) -> Output {
    support::run(
        Command::new(support::xtask_bin())
            .arg("adopt")
            .arg(target)
            .current_dir(support::repo_root()),
    )
}

/// `cargo metadata --offline --locked` in a repo's root workspace, as twoliter resolves it.
fn metadata_locked(repo: &Path) -> Output {
    support::run(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "metadata",
                "--offline",
                "--locked",
                "--format-version",
                "1",
                "--no-deps",
            ])
            .current_dir(repo),
    )
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn ignored(repo: &Path, path: &str) -> bool {
    Command::new("git")
        .args(["check-ignore", "-q", path])
        .current_dir(repo)
        .status()
        .unwrap()
        .success()
}

/// Runs the printed commit commands with a git identity.
fn commit(commands: &str) {
    support::run_ok(
        Command::new("sh")
            .args(["-euc", commands])
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com"),
    );
}

#[test]
fn adopting_a_forest_keeps_each_repos_cargo_workspace_and_needs_one_commit_each() {
    let forest = forest();
    let repos = [forest.kit.path(), forest.variant.path()];
    let mut roots = Vec::new();
    for repo in repos {
        assert!(
            metadata_locked(repo).status.success(),
            "the fixture's own workspace resolves"
        );
        roots.push((
            read(repo.join("Cargo.toml")),
            read(repo.join("Cargo.lock")),
            read(repo.join(".gitignore")),
        ));
    }

    let output = adopt(&forest.root);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "one commit command per repo:\n{stdout}");

    let own_lock = read(support::repo_root().join("Cargo.lock"));
    for (repo, (manifest, lock, gitignore)) in repos.iter().zip(&roots) {
        // The repo's own workspace is untouched and still resolves offline from its lock.
        assert_eq!(&read(repo.join("Cargo.toml")), manifest);
        assert_eq!(&read(repo.join("Cargo.lock")), lock);
        let after = metadata_locked(repo);
        assert!(after.status.success(), "{}", support::stderr(&after));
        // The xtask is its own workspace, with this xtask's lock.
        let crate_manifest = read(repo.join("xtask/Cargo.toml"));
        assert!(crate_manifest.contains("\n[workspace]\n") && crate_manifest.contains("[profile.dev]"));
        assert_eq!(read(repo.join("xtask/Cargo.lock")), own_lock);
        assert!(repo.join("xtask/src/main.rs").is_file() && repo.join("phases/kit/SKILL.md").is_file());
        assert_eq!(read(repo.join(".cargo/config.toml")), ALIAS_CONFIG);
        assert_eq!(read(repo.join("planning/.gitignore")), "*\n!.gitignore\n");
        // `/.cargo` is split: the alias is tracked, CARGO_HOME's contents stay ignored.
        let new_gitignore = read(repo.join(".gitignore"));
        assert_eq!(
            new_gitignore,
            gitignore.replacen("/.cargo\n", "/.cargo/*\n!/.cargo/config.toml\n", 1)
        );
        assert!(!ignored(repo, ".cargo/config.toml"));
        assert!(ignored(repo, ".cargo/registry/cache/x.crate"));
        assert!(ignored(repo, "planning/build-kit-core-kit-x86_64/progress.json"));
        assert!(ignored(repo, "xtask/target/debug/xtask"));
        let command = lines
            .iter()
            .find(|l| l.contains(&format!("git -C {} add", repo.display())))
            .unwrap_or_else(|| panic!("no commit command for {}:\n{stdout}", repo.display()));
        assert!(command.contains(" commit -m "), "{command}");
    }

    // The printed commands commit everything: the trees are clean, the build ids not dirty.
    commit(&stdout);
    for repo in repos {
        assert_eq!(support::git(repo, &["status", "--porcelain"]), "");
        let id = support::git(repo, &["describe", "--always", "--dirty", "--exclude", "*"]);
        assert!(!id.trim().ends_with("-dirty"), "{id}");
    }

    // A second run changes nothing and says so.
    let before: Vec<_> = repos.iter().map(|r| support::snapshot(r)).collect();
    let again = adopt(&forest.root);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "", "nothing left to commit");
    let err = support::stderr(&again);
    assert_eq!(err.matches("already adopted, nothing changed").count(), 2, "{err}");
    let after: Vec<_> = repos.iter().map(|r| support::snapshot(r)).collect();
    assert!(before == after, "the second run wrote nothing");
}

#[test]
fn a_newer_xtask_replaces_the_copy_and_drops_files_it_no_longer_has() {
    let forest = forest();
    let kit = forest.kit.path();
    assert!(adopt(kit).status.success());
    // An older copy: an edited file and a file this xtask does not have.
    std::fs::write(kit.join("xtask/src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(kit.join("xtask/src/gone.rs"), "// removed upstream\n").unwrap();
    std::fs::write(kit.join("phases/kit/OLD.md"), "# old\n").unwrap();
    std::fs::create_dir_all(kit.join("xtask/target/debug")).unwrap();
    std::fs::write(kit.join("xtask/target/debug/keep"), "build output\n").unwrap();
    let output = adopt(kit);
    assert!(output.status.success());
    assert_eq!(
        read(kit.join("xtask/src/main.rs")),
        read(support::repo_root().join("xtask/src/main.rs"))
    );
    assert!(!kit.join("xtask/src/gone.rs").exists());
    assert!(!kit.join("phases/kit/OLD.md").exists());
    assert!(
        kit.join("xtask/target/debug/keep").exists(),
        "the build directory is not the copy's"
    );
    let err = support::stderr(&output);
    assert!(err.contains("removed 2 files"), "{err}");
}

#[test]
fn adopt_refuses_what_it_would_break_and_writes_nothing() {
    // Neither a repo nor a forest.
    let plain = tempfile::tempdir().unwrap();
    let output = adopt(plain.path());
    assert!(!output.status.success());
    assert!(support::stderr(&output).contains("neither a kit repo"));

    let forest = forest();
    let kit = forest.kit.path();
    let variant = forest.variant.path();
    let expect_refusal = |setup: &dyn Fn(), undo: &dyn Fn(), needle: &str| {
        setup();
        let before = (support::snapshot(kit), support::snapshot(variant));
        let output = adopt(&forest.root);
        assert!(!output.status.success());
        let err = support::stderr(&output);
        assert!(err.contains(needle), "{err}");
        assert!(output.stdout.is_empty());
        let after = (support::snapshot(kit), support::snapshot(variant));
        assert!(
            before == after,
            "a refusal in one repo writes nothing in any ({needle})"
        );
        undo();
    };
    // The old advice: the xtask as a member of the root workspace.
    let manifest = kit.join("Cargo.toml");
    let original = read(&manifest);
    expect_refusal(
        &|| {
            std::fs::write(
                &manifest,
                original.replace("members = [\n", "members = [\n    \"xtask\",\n"),
            )
            .unwrap()
        },
        &|| std::fs::write(&manifest, &original).unwrap(),
        "lists \"xtask\" as a workspace member",
    );
    // A .cargo/config.toml with settings of its own (the kit Makefile's CARGO_HOME).
    let config = variant.join(".cargo/config.toml");
    expect_refusal(
        &|| {
            std::fs::create_dir_all(config.parent().unwrap()).unwrap();
            std::fs::write(&config, "[build]\njobs = 2\n").unwrap();
        },
        &|| std::fs::remove_dir_all(config.parent().unwrap()).unwrap(),
        "has settings of its own (build)",
    );
    // An xtask/ that is some other crate.
    let other = kit.join("xtask/Cargo.toml");
    expect_refusal(
        &|| {
            std::fs::create_dir_all(other.parent().unwrap()).unwrap();
            std::fs::write(&other, "[package]\nname = \"their-xtask\"\n").unwrap();
        },
        &|| std::fs::remove_dir_all(other.parent().unwrap()).unwrap(),
        "holds another crate than this xtask",
    );
    // A phases/ of someone else's.
    let notes = kit.join("phases/notes.md");
    expect_refusal(
        &|| {
            std::fs::create_dir_all(notes.parent().unwrap()).unwrap();
            std::fs::write(&notes, "# notes\n").unwrap();
        },
        &|| std::fs::remove_dir_all(notes.parent().unwrap()).unwrap(),
        "is not this xtask's",
    );
    // A kit repo that is not a git checkout.
    let git_dir = kit.join(".git");
    let moved = forest.root.parent().unwrap().join("core-kit.git");
    expect_refusal(
        &|| std::fs::rename(&git_dir, &moved).unwrap(),
        &|| std::fs::rename(&moved, &git_dir).unwrap(),
        "is not a git checkout",
    );
    // And with everything put back, it adopts.
    assert!(adopt(&forest.root).status.success());
}

/// The adopted crate builds and runs in the kit repo with the copied lock and no network, both
/// as `cargo run --manifest-path xtask/Cargo.toml` and through the `cargo xtask` alias.
#[test]
fn the_adopted_xtask_builds_offline_from_its_own_lock() {
    let forest = forest();
    let kit = forest.kit.path();
    assert!(adopt(kit).status.success());
    let lock = read(kit.join("xtask/Cargo.lock"));
    // Kept between runs, so that only the first one compiles the dependencies.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("adopted-xtask");
    let cargo = || {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(kit).env("CARGO_TARGET_DIR", &target);
        cmd
    };
    let help = support::run_ok(cargo().args([
        "run",
        "--offline",
        "--locked",
        "--quiet",
        "--manifest-path",
        "xtask/Cargo.toml",
        "--",
        "--help",
    ]));
    assert!(help.contains("build-kit") && help.contains("adopt"), "{help}");
    let alias = support::run_ok(
        cargo()
            .args(["xtask", "registry", "--help"])
            .env("CARGO_NET_OFFLINE", "true"),
    );
    assert!(alias.contains("one per forest"), "{alias}");
    assert_eq!(
        read(kit.join("xtask/Cargo.lock")),
        lock,
        "the copied lock is used as it is"
    );
    assert_eq!(support::git(kit, &["status", "--porcelain", "--", "Cargo.lock"]), "");
}
