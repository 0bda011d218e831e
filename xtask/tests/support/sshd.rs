//! A real OpenSSH server on 127.0.0.1 for the `--on` tests, run as the current user from a
//! temp dir (its own host key, authorized key and config), and the ssh client config that
//! reaches it: `builder` logs in with the authorized key, `stranger` with a key the server does
//! not know, `nowhere` points at a port nothing listens on. Stopped when dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where sshd is, if this machine has it (`cargo xtask test --install` installs
/// openssh-server, so CI always does).
pub fn sshd_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("sshd")).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/sbin/sshd"))
        .chain(on_path)
        .find(|p| p.is_file())
}

/// Whether the `--on` tests can run: sshd, ssh and ssh-keygen present. Otherwise the test
/// prints why it skips (and fails under `CI=true`).
pub fn available(test: &str) -> bool {
    let client = ["ssh", "ssh-keygen"].iter().all(|tool| {
        Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success() || !o.stderr.is_empty())
    });
    let ok = client && sshd_bin().is_some();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: sshd or the ssh client is missing, and CI=true requires them");
        }
        eprintln!(
            "SKIP {test}: sshd (openssh-server) or ssh/ssh-keygen (openssh-client) is not installed; \
             `cargo xtask test --install` installs them"
        );
    }
    ok
}

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    super::run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
    );
}

impl Sshd {
    /// Starts sshd; every session gets `env` (sshd's `SetEnv`), e.g. a PATH with stand-ins.
    pub fn start(env: &[(String, OsString)]) -> Sshd {
        let dir = tempfile::Builder::new().prefix("sshd-").tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        keygen(&d.join("stranger_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = super::free_port();
        let set_env: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("\"{k}={}\"", v.to_string_lossy()))
            .collect();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
             LogLevel VERBOSE\nAcceptEnv TWOLITER_STANDIN_*\nSetEnv {}\n",
            set_env.join(" "),
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let user = super::run_ok(Command::new("id").arg("-un")).trim().to_string();
        let closed = super::free_port();
        let client = |name: &str, key: &str, port: u16| {
            format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/{key}\n  \
                 IdentitiesOnly yes\n  IdentityAgent none\n  StrictHostKeyChecking no\n  \
                 UserKnownHostsFile {d}/known_hosts\n  LogLevel ERROR\n  SendEnv TWOLITER_STANDIN_FAIL TWOLITER_STANDIN_BUILD_SECONDS\n",
                d = d.display()
            )
        };
        let client_config = [
            client("builder", "client_key", port),
            client("stranger", "stranger_key", port),
            client("nowhere", "client_key", closed),
        ]
        .concat();
        std::fs::write(d.join("ssh_config"), client_config).unwrap();
        // sshd run by root wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let child = Command::new(sshd_bin().expect("sshd is installed"))
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port}: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    /// The client config (`ssh -F`, `XTASK_SSH_CONFIG`).
    pub fn client_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// How many sessions sshd accepted so far (each ssh command is one).
    pub fn sessions(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
