#!/usr/bin/env python3
"""Reference implementation of `cargo xtask next-step` for the kit workflow, for `cargo xtask bench`.

The benchmark compares the Rust binary's latency with this: the same protocol written the way a
small Python tool would write it (standard library only, no shortcuts). Like the Rust command it

  - reads and validates <workspace>/input.json and resolves the kit repo
    (kit_dir, else $XTASK_ROOT when it is a kit repo, else $FOREST_ROOT/kits/<kit>);
  - takes an exclusive flock on <workspace>/.lock (waiting up to 30 s);
  - reads and checks progress.json (schema version, workflow, phases), or starts a fresh one;
  - decides with the same rules: the first phase not passed is current; a spawned phase is gated
    (passed -> next phase, failed -> another attempt or gate_failed after --max-attempts); a pending
    phase whose result file exists is gated first and passes without costing an attempt;
  - gates a phase on its result file (exists, ok, data) AND on reality:
      SETUP    no Infra.lock; GET /v2/ on the registry; Infra.toml (tomllib) names it for vendor local
      BUILD    `git describe --always --dirty --exclude '*'` (with --abbrev=8 for twoliter 0.7.3 and
               later, by the installed twoliter's version, else the Makefile's pin) equals the build
               id; the archive has the recorded size and holds the recorded image (its index.json
               and manifest blob); the fingerprint (tree, uncommitted diff, untracked files, arch,
               twoliter version)
      PUBLISH  the index tag is served and references the image PUBLISH recorded
      VERIFY   the index is an image index with linux/<arch>; every image's kit label names the kit
               and version; the index digest is the recorded one
  - writes progress.json atomically (temp file, rename; no fsync, like the Rust command's workspace
    state) and prints one JSON action.

Usage: next_step.py <workspace> [--phase-result success|failure] [--reason TEXT] [--max-attempts N]
"""

import argparse
import base64
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

SCHEMA_VERSION = 2
PHASES = [("setup", "SETUP", "01-setup.md"), ("build", "BUILD", "02-build.md"),
          ("publish", "PUBLISH", "03-publish.md"), ("verify", "VERIFY", "04-verify.md")]
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
IDENT = re.compile(r"^[A-Za-z0-9_-]+$")
ACCEPT = ("application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
          "application/vnd.docker.distribution.manifest.list.v2+json, "
          "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


class Error(Exception):
    pass


class GateFailed(Exception):
    pass


# ------------------------------------------------------------------ inputs


def load_input(ws):
    if not ws.is_dir():
        raise Error(f"workspace {ws} does not exist")
    try:
        value = json.loads((ws / "input.json").read_text())
    except FileNotFoundError:
        raise Error(f"{ws / 'input.json'} is missing")
    except json.JSONDecodeError as e:
        raise Error(f"input.json is not valid JSON: {e}")
    if not isinstance(value, dict):
        raise Error("input.json must be a JSON object")
    if "kits" in value or "kit_name" not in value:
        raise Error("this reference implements the kit workflow only")
    kit = value["kit_name"]
    if not isinstance(kit, str) or not IDENT.match(kit):
        raise Error(f"kit_name `{kit}` is not a twoliter name")
    arch = ARCHES.get(value.get("arch"))
    if arch is None:
        raise Error(f"unknown arch {value.get('arch')!r}")
    registry = value.get("registry")
    if registry is not None and not re.match(r"^(localhost|127\.0\.0\.1):[1-9][0-9]*$", registry):
        raise Error(f"registry `{registry}` is not a local registry address")
    if value.get("kit_dir"):
        repo = Path(value["kit_dir"]).absolute()
    else:
        root = Path(os.environ.get("XTASK_ROOT") or Path(__file__).resolve().parents[3])
        if (root / "Twoliter.toml").is_file() and (root / "kits").is_dir():
            repo = root
        elif os.environ.get("FOREST_ROOT"):
            repo = Path(os.environ["FOREST_ROOT"]) / "kits" / kit
        else:
            raise Error(f"{root} is not a kit repo: set kit_dir or FOREST_ROOT")
    if not (repo / "Twoliter.toml").is_file():
        raise Error(f"{repo} has no Twoliter.toml")
    if not (repo / "kits" / kit).is_dir():
        raise Error(f"unknown kit `{kit}` in {repo}")
    return {"kit": kit, "arch": arch, "repo": repo, "registry": registry}


class Lock:
    def __init__(self, path, timeout=30.0):
        self.file = open(path, "a")
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Error(f"{path} is held by another process")
                time.sleep(delay)
                delay = min(delay * 2, 0.2)


def load_progress(ws, now):
    path = ws / "progress.json"
    try:
        progress = json.loads(path.read_text())
    except FileNotFoundError:
        return {"schema_version": SCHEMA_VERSION, "workflow": "kit", "created_at": now, "updated_at": now,
                "phases": [{"id": p, "state": "pending", "attempts": 0, "failures": [], "started_at": None,
                            "passed_at": None} for p, _, _ in PHASES]}
    except json.JSONDecodeError as e:
        raise Error(f"{path} is not valid: {e}")
    if progress.get("schema_version", 0) > SCHEMA_VERSION:
        raise Error(f"{path} has a newer schema version")
    if progress.get("workflow") != "kit":
        raise Error(f"{path} belongs to another workflow")
    if [p["id"] for p in progress["phases"]] != [p for p, _, _ in PHASES]:
        raise Error(f"{path} lists other phases")
    return progress


def write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ gates


def http_get(port, path, accept=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError as e:
        raise GateFailed(f"the registry on port {port} does not answer ({e})")


def manifest(port, repo, reference):
    status, headers, body = http_get(port, f"/v2/{repo}/manifests/{reference}", ACCEPT)
    if status == 404:
        return None
    if status != 200:
        raise GateFailed(f"GET manifest {repo}:{reference} answered {status}")
    digest = headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
    return json.loads(body), digest


def port_of(registry):
    return int(registry.rsplit(":", 1)[1])


def git(repo, *args):
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True)
    if out.returncode != 0:
        raise GateFailed(f"`git {' '.join(args)}` failed: {out.stderr.decode().strip()}")
    return out.stdout


def twoliter_version(repo):
    """The installed tools/twoliter/twoliter's version, else the Makefile's TWOLITER_VERSION pin."""
    twoliter = repo / "tools/twoliter/twoliter"
    if os.access(twoliter, os.X_OK):
        try:
            out = subprocess.run([str(twoliter), "--version"], capture_output=True, text=True).stdout
        except OSError:
            return ""
        words = out.split()
        return words[1].removeprefix("v") if len(words) > 1 and words[0] == "twoliter" else ""
    try:
        makefile = (repo / "Makefile").read_text()
    except OSError:
        return ""
    pins = re.findall(r'(?m)^\s*TWOLITER_VERSION\s*\?=\s*"?v?([^"\s#]+)"?', makefile)
    return pins[0] if pins else ""


def build_id(repo, version):
    numbers = [int(n) for n in re.findall(r"\d+", version)[:3]]
    abbrev = [] if numbers and numbers < [0, 7, 3] else ["--abbrev=8"]
    return git(repo, "describe", "--always", "--dirty", "--exclude", "*", *abbrev).decode().strip()


def archive_image(path):
    """The digest of the one image an OCI layout archive holds, checked against its manifest blob."""
    try:
        with tarfile.open(path) as tar:
            def member(name):
                for entry in tar:
                    if entry.isfile() and entry.name.removeprefix("./") == name:
                        return tar.extractfile(entry).read()
                return None
            index = json.loads(member("index.json") or b"{}")
            digest = index["manifests"][0]["digest"]
            blob = member(f"blobs/sha256/{digest.removeprefix('sha256:')}")
    except (OSError, tarfile.TarError, ValueError, KeyError, IndexError) as e:
        raise GateFailed(f"{path} is not a kit archive: {e}")
    if blob is None or "sha256:" + hashlib.sha256(blob).hexdigest() != digest:
        raise GateFailed(f"{path} is damaged")
    return digest


OWN_PATHS = ["xtask", "phases", ".cargo/config.toml", "planning"]
EXCLUDED = [f":(exclude){p}" for p in OWN_PATHS]


def committed(repo):
    """The committed tree without the xtask's own paths, one ls-tree entry per line."""
    out = ""
    entries = git(repo, "ls-tree", "-z", "HEAD").decode().split("\0")
    entries += git(repo, "ls-tree", "-z", "-r", "HEAD", ".cargo/").decode().split("\0")
    for entry in filter(None, entries):
        path = entry.split("\t", 1)[1] if "\t" in entry else ""
        if path not in OWN_PATHS and path != ".cargo":
            out += entry + "\n"
    return out.encode()


def fingerprint(repo, arch, version):
    h = hashlib.sha256()
    h.update(f"arch={arch}\n".encode())
    h.update(committed(repo))
    h.update(git(repo, "diff", "HEAD", "--binary", "--no-ext-diff", "--", ".", *EXCLUDED))
    for path in git(repo, "ls-files", "-z", "--others", "--exclude-standard", "--", ".", *EXCLUDED).split(b"\0"):
        if path:
            h.update(b"untracked=" + path + b"\n")
            try:
                h.update(hashlib.sha256((repo / path.decode()).read_bytes()).digest())
            except OSError:
                pass
    h.update(f"twoliter={version}\n".encode())
    return h.hexdigest()


def gate_setup(kit, data):
    if (kit["repo"] / "Infra.lock").exists():
        raise GateFailed("Infra.lock exists, and twoliter reads it instead of Infra.toml")
    status, _, _ = http_get(data["port"], "/v2/")
    if status not in (200, 401):
        raise GateFailed(f"GET /v2/ answered {status}: run `cargo xtask registry start`")
    try:
        infra = tomllib.loads(Path(data["infra_toml"]).read_text())
    except FileNotFoundError:
        raise GateFailed(f"{data['infra_toml']} is gone: run SETUP again")
    registry = infra.get("vendor", {}).get("local", {}).get("registry")
    if registry != data["registry"]:
        raise GateFailed(f"Infra.toml names {registry!r} for vendor local, not {data['registry']}")


def gate_build(kit, data):
    version = twoliter_version(kit["repo"])
    now = build_id(kit["repo"], version)
    if now != data["build_id"]:
        raise GateFailed(f"the kit repo changed since BUILD (build id was {data['build_id']}, now {now})")
    archive = Path(data["archive"])
    if not archive.is_file():
        raise GateFailed(f"{data['archive']} is gone: run BUILD again")
    if archive.stat().st_size != data["size"] or archive_image(archive) != data["image_digest"]:
        raise GateFailed(f"{data['archive']} is not the archive BUILD made: run BUILD again")
    if fingerprint(kit["repo"], kit["arch"], version) != data["fingerprint"]:
        raise GateFailed("the kit repo's content changed since BUILD")


def gate_publish(kit, data):
    port = port_of(data["registry"])
    index = manifest(port, data["repository"], data["tag"])
    if index is None:
        raise GateFailed(f"{data['repository']}:{data['tag']} is not in the registry")
    if not any(m.get("digest") == data["image_digest"] for m in index[0].get("manifests", [])):
        raise GateFailed(f"{data['repository']}:{data['tag']} does not reference this build's image")


def gate_verify(kit, data):
    port = port_of(data["registry"])
    index = manifest(port, kit["kit"], data["tag"])
    if index is None:
        raise GateFailed(f"{kit['kit']}:{data['tag']} is not in the registry: run PUBLISH")
    body, digest = index
    if body.get("mediaType") not in INDEX_TYPES:
        raise GateFailed(f"{kit['kit']}:{data['tag']} is not an image index")
    entries = body.get("manifests", [])
    if not any(m.get("platform", {}).get("architecture") == OCI_ARCH[kit["arch"]]
               and m.get("platform", {}).get("os") == "linux" for m in entries):
        raise GateFailed(f"{kit['kit']}:{data['tag']} has no linux/{OCI_ARCH[kit['arch']]} image")
    for entry in entries:
        image = manifest(port, kit["kit"], entry["digest"])
        if image is None:
            raise GateFailed(f"the index lists {entry['digest']} but the registry does not serve it")
        config_digest = image[0]["config"]["digest"]
        status, _, blob = http_get(port, f"/v2/{kit['kit']}/blobs/{config_digest}")
        if status != 200 or "sha256:" + hashlib.sha256(blob).hexdigest() != config_digest:
            raise GateFailed(f"config blob {config_digest} is missing or corrupt")
        labels = (json.loads(blob).get("config") or {}).get("Labels") or {}
        kit_labels = sorted((int(k.rsplit(".v", 1)[1]), v) for k, v in labels.items()
                            if re.match(r"^dev\.bottlerocket\.kit\.v\d+$", k))
        if not kit_labels:
            raise GateFailed(f"image {entry['digest']} has no kit label")
        meta = json.loads(base64.b64decode(kit_labels[-1][1]))
        if meta.get("name") != kit["kit"] or meta.get("version") != data["version"]:
            raise GateFailed(f"image {entry['digest']} carries another kit or version")
    if digest != data["index_digest"]:
        raise GateFailed("the kit was re-published since VERIFY; run VERIFY again")


GATES = {"setup": gate_setup, "build": gate_build, "publish": gate_publish, "verify": gate_verify}


def result_path(ws, phase):
    return ws / "results" / f"{phase}.json"


def identity(kit):
    """What the workflow was asked to do, as the xtask binds results to it."""
    value = {"kit": kit["kit"], "arch": kit["arch"], "repo": str(kit["repo"]), "registry": kit.get("registry")}
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


BUILDS_ON = {"setup": [], "build": [], "publish": ["setup", "build"], "verify": ["publish"]}


def upstream(ws, phase):
    if not BUILDS_ON[phase]:
        return None
    ids = []
    for before in BUILDS_ON[phase]:
        try:
            result = json.loads(result_path(ws, before).read_text())
        except (OSError, ValueError):
            result = {}
        ids.append(result.get("id", "") if result.get("ok") else "")
    return "+".join(ids)


def gate(ws, kit, phase, title):
    command = f"cargo xtask phase {phase} {ws}"
    try:
        result = json.loads(result_path(ws, phase).read_text())
    except FileNotFoundError:
        return f"{title} has no result: its phase command did not run; run `{command}`"
    except json.JSONDecodeError as e:
        return f"{title} result unreadable: {e}; run `{command}`"
    if not (result.get("ok") and result.get("data")):
        return f"{title} failed: {result.get('error') or 'no reason recorded'}"
    if result.get("workspace") != str(ws):
        return f"{title}'s result was made in another workspace"
    if result.get("subject") != identity(kit):
        return f"{title}'s result was made for other inputs"
    output = next(o for i, _, o in PHASES if i == phase)
    try:
        report = (ws / "reports" / output).read_bytes()
    except OSError:
        report = b""
    if hashlib.sha256(report).hexdigest() != result.get("report_sha256"):
        return f"{title}'s report is not the one its run wrote"
    if result.get("upstream") != upstream(ws, phase):
        return f"{title}'s result was made before the phase before it last ran"
    try:
        GATES[phase](kit, result["data"])
    except GateFailed as e:
        return f"{title}: {e}"
    return None


# ------------------------------------------------------------------ the decision


def marks(ws, phase):
    """The phase's result id and answer file, as the xtask compares them with the spawn's."""
    try:
        result = json.loads(result_path(ws, phase).read_text()).get("id")
    except (OSError, ValueError):
        result = None
    output = next(o for i, _, o in PHASES if i == phase)
    digest = None
    try:
        st = os.stat(ws / "answers" / output)
        answer = [st.st_size, st.st_mtime_ns // 1_000_000]
        if st.st_size <= 16 << 20:
            digest = hashlib.sha256((ws / "answers" / output).read_bytes()).hexdigest()
    except OSError:
        answer = None
    fields = (("result", result), ("answer", answer), ("answer_sha256", digest))
    return {k: v for k, v in fields if v is not None}


def changed_since(now, before):
    """A digest counts only when both marks have one (progress from before digests were kept)."""
    if now.get("result") != before.get("result") or now.get("answer") != before.get("answer"):
        return True
    a, b = now.get("answer_sha256"), before.get("answer_sha256")
    return a is not None and b is not None and a != b


def running(ws, phase):
    try:
        fd = os.open(ws / f".{phase}.lock", os.O_WRONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def decide(ws, kit, progress, report, max_attempts, now):
    """Returns the action; changes `progress` in place."""
    max_attempts = max(1, max_attempts)
    by_id = {p["id"]: p for p in progress["phases"]}
    checked = set()

    def checked_gate(phase, title):
        if phase in checked:
            return None
        failed = gate(ws, kit, phase, title)
        if failed is None:
            checked.add(phase)
        return failed

    def spawn(phase):
        p = by_id[phase]
        p["spawn_marks"] = marks(ws, phase)
        p["attempts"] += 1
        p["state"] = "spawned"
        p["started_at"] = now
        progress["updated_at"] = now
        last = p["failures"][-1]["reason"] if p["failures"] else None
        return {"action": "spawn", "phase": phase, "attempt": p["attempts"], "last_failure": last}

    def passed(phase, note):
        p = by_id[phase]
        p.update(state="passed", passed_at=now)
        if note:
            p["note"] = note
        else:
            p.pop("note", None)
        progress["updated_at"] = now

    while True:
        current = next((p for p in progress["phases"] if p["state"] != "passed"), None)
        if current is None:
            stale = next((p for p, t, _ in PHASES if checked_gate(p, t) is not None), None)
            if stale is None:
                return {"action": "done"}
            reopen = False
            for p in progress["phases"]:
                reopen = reopen or p["id"] == stale
                if reopen:
                    p["state"] = "pending"
            continue
        phase = current["id"]
        title = next(t for i, t, _ in PHASES if i == phase)
        if current["state"] == "gave_up":
            return {"action": "gate_failed", "phase": phase, "failures": current["failures"]}
        if current["state"] == "spawned":
            if running(ws, phase):
                return {"action": "wait", "phase": phase}
            before = current.get("spawn_marks")
            unchanged = before is not None and not changed_since(marks(ws, phase), before)
            if unchanged and not (report or {}).get("success") in (True, False):
                last = current["failures"][-1]["reason"] if current["failures"] else None
                return {"action": "spawn", "phase": phase, "attempt": current["attempts"], "last_failure": last}
            failed = checked_gate(phase, title)
            if failed is None:
                passed(phase, None)
            else:
                said = report or {}
                report = None
                if said.get("success") is False:
                    reason = f"sub-agent reported failure: {said['reason']}; gate: {failed}" if said.get(
                        "reason") else f"sub-agent reported failure; gate: {failed}"
                elif said.get("success") is True:
                    reason = f"sub-agent reported success, but the gate failed: {failed}"
                else:
                    reason = failed
                current["failures"].append({"attempt": max(1, current["attempts"]), "reason": reason, "at": now})
                progress["updated_at"] = now
                if current["attempts"] >= max_attempts:
                    current["state"] = "gave_up"
                    return {"action": "gate_failed", "phase": phase, "failures": current["failures"]}
                current["state"] = "pending"
                return spawn(phase)
        else:  # pending
            if running(ws, phase):
                return {"action": "wait", "phase": phase}
            if result_path(ws, phase).is_file() and checked_gate(phase, title) is None:
                passed(phase, "its result was already there and its gate passed")
                report = None
                continue
            if current["attempts"] >= max_attempts:
                current["state"] = "gave_up"
                return {"action": "gate_failed", "phase": phase, "failures": current["failures"]}
            return spawn(phase)
        report = None


def answer(args):
    ws = Path(args.workspace).absolute()
    kit = load_input(ws)
    lock = Lock(ws / ".lock")
    now = int(time.time())
    progress = load_progress(ws, now)
    report = {"success": {"success": True, "failure": False}.get(args.phase_result), "reason": args.reason}
    action = decide(ws, kit, progress, report, args.max_attempts, now)
    write_atomic(ws / "progress.json", json.dumps(progress, indent=2) + "\n")
    del lock
    root = Path(os.environ.get("XTASK_ROOT") or Path(__file__).resolve().parents[3])
    if action["action"] == "spawn":
        phase = action["phase"]
        title, output = next((t, o) for i, t, o in PHASES if i == phase)
        phase_file = root / "phases" / "kit" / f"{title}.md"
        command = ["cargo", "xtask", "phase", phase, str(ws)]
        registry = kit["registry"]
        try:
            setup = json.loads(result_path(ws, "setup").read_text())
            registry = f"localhost:{setup['data']['port']}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        data = {"workspace": str(ws), "workflow": "kit", "phase": phase, "phase_command": command,
                "cwd": str(root), "attempt": action["attempt"], "max_attempts": args.max_attempts,
                "last_failure": action["last_failure"], "result_file": str(result_path(ws, phase)),
                "report_file": str(ws / "reports" / output), "log_file": str(ws / "logs" / f"{phase}.log"),
                "kit": kit["kit"], "arch": kit["arch"], "kit_dir": str(kit["repo"]), "registry": registry}
        retry = ""
        if action["last_failure"]:
            retry = (f"\n\nThis is attempt {action['attempt']} of {args.max_attempts}. The previous attempt "
                     f"failed its gate: {action['last_failure']}\nFix the cause before running the command "
                     "again; do not work around the check.")
        prompt = (f"You run the {title} phase of the Bottlerocket kit workflow for kit `{kit['kit']}` for "
                  f"{kit['arch']}.\nRead {phase_file} and follow it. In {root}, run exactly:\n\n"
                  f"    {' '.join(command)}\n\nIt does the work and checks it.{retry}")
        return {"action": "spawn", "type": "spawn", "workflow": "kit", "phase": title,
                "attempt": action["attempt"], "prompt": prompt, "context_files": [str(phase_file)],
                "context_data": data, "output_file": f"answers/{output}"}
    if action["action"] == "wait":
        title = next(t for i, t, _ in PHASES if i == action["phase"])
        log = ws / "logs" / f"{action['phase']}.log"
        return {"action": "wait", "type": "wait", "workflow": "kit", "phase": title,
                "reason": f"the {title} phase command is running", "retry_after_s": 5,
                "log_file": str(log), "workspace": str(ws)}
    if action["action"] == "gate_failed":
        title = next(t for i, t, _ in PHASES if i == action["phase"])
        reasons = " | ".join(f"attempt {f['attempt']}: {f['reason']}" for f in action["failures"])
        return {"action": "gate_failed", "type": "gate_failed", "workflow": "kit", "phase": title,
                "reason": f"{title} did not pass its gate after {len(action['failures'])} attempts. {reasons}",
                "attempts": action["failures"], "workspace": str(ws)}
    summary = ws / PHASES[-1][2]
    write_atomic(summary, (ws / "reports" / PHASES[-1][2]).read_text())
    return {"action": "done", "type": "done", "workflow": "kit", "summary_file": str(summary),
            "workspace": str(ws),
            "phases": [{"phase": p["id"], "attempts": p["attempts"], "note": p.get("note")}
                       for p in progress["phases"]]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace")
    parser.add_argument("--phase-result", choices=["success", "failure"])
    parser.add_argument("--reason")
    parser.add_argument("--max-attempts", type=int, default=3)
    args = parser.parse_args()
    try:
        print(json.dumps(answer(args)))
        return 0
    except Error as e:
        print(json.dumps({"action": "error", "type": "error", "reason": str(e)}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
