//! A local enclave under a temporary root, with toy services written as shell scripts, driven
//! through the real `enclave init` binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use enclave::config::signature::{self, PrivateKey};
use enclave::paths::Root;
use enclave::service::state::{ServiceState, StateDir, Status};
use serde_json::Value;

use super::{dev_private_key_path, dev_public_key_path, example_path, read_json};

/// Polls `condition` until it holds or `timeout` passes; the deadline makes a hang a failure
/// instead of a stuck test.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Enclave {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub services: PathBuf,
    pub child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Enclave {
    /// A root with the dev key installed as the image's key and the example configuration
    /// (with fast restarts) signed by it.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Services that drop to another account (PostgreSQL runs as `postgres`) must be able to
        // traverse the root.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let root = dir.path().join("root");
        let services = dir.path().join("s6-rc.d");
        fs::create_dir_all(root.join("etc/enclave")).expect("mkdir");
        fs::create_dir_all(&services).expect("mkdir");
        fs::copy(
            dev_public_key_path(),
            root.join("etc/enclave/configuration.pub"),
        )
        .expect("key");
        let e = Self {
            stdout: dir.path().join("stdout.log"),
            stderr: dir.path().join("stderr.log"),
            _dir: dir,
            root,
            services,
            child: None,
        };
        e.configure(|_| {});
        e
    }

    /// A port from the written configuration (`ports.<name>`).
    pub fn port(&self, name: &str) -> u16 {
        let text = fs::read_to_string(self.config_path()).expect("config");
        let v: Value = serde_json::from_str(&text).expect("json");
        v["solution"]["ports"][name].as_u64().expect("port") as u16
    }

    /// `GET http://127.0.0.1:<port><path>` → (status, body); None when nothing answers.
    pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    }

    pub fn config_path(&self) -> PathBuf {
        Root::new(&self.root).configuration()
    }

    /// Writes the example configuration, changed by `mutate`, signed with the dev key. The
    /// restart backoff is shortened so that tests stay fast.
    pub fn configure(&self, mutate: impl FnOnce(&mut Value)) {
        let mut document = read_json(&example_path());
        let solution = document["solution"].as_object_mut().expect("object");
        solution.shift_remove("signature");
        solution.insert(
            "supervisor".into(),
            serde_json::json!({"restartBackoffInitialMs": 100, "restartBackoffMaxMs": 400}),
        );
        let mut solution_value = Value::Object(solution.clone());
        // Many enclaves run at once in tests: no fixed ports, and no pushes unless a test asks.
        solution_value["ports"]["supervisor"] = serde_json::json!(free_port());
        solution_value["ports"]["processMetrics"] = serde_json::json!(free_port());
        solution_value["ports"]["alerts"] = serde_json::json!(free_port());
        solution_value["telemetry"]["targets"] = serde_json::json!([]);
        // No chain unless a test starts one.
        solution_value["chain"] = serde_json::json!({"enabled": false});
        mutate(&mut solution_value);
        let key_text = fs::read_to_string(dev_private_key_path()).expect("dev key");
        let key = PrivateKey::from_pkcs8_text(&key_text).expect("dev key parses");
        let signed = signature::sign(&solution_value, &key).expect("sign");
        solution_value["signature"] = Value::String(signed.signature_b64);
        let path = self.config_path();
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(
            &path,
            serde_json::to_string_pretty(&serde_json::json!({"solution": solution_value}))
                .expect("json"),
        )
        .expect("write config");
    }

    /// A service folder: `files` are (relative path, content); `run`, `finish` and anything
    /// under `bin/` are made executable.
    pub fn service(&self, name: &str, kind: &str, files: &[(&str, &str)]) {
        let dir = self.services.join(name);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("type"), format!("{kind}\n")).expect("type");
        for (file, content) in files {
            let path = dir.join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, content).expect("write");
            if *file == "run" || *file == "finish" {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
        }
    }

    /// A longrun whose run script is `body` under `#!/bin/sh`.
    pub fn longrun(&self, name: &str, body: &str, extra: &[(&str, &str)]) {
        let run = format!("#!/bin/sh\n{body}\n");
        let mut files = vec![("run", run.as_str())];
        files.extend_from_slice(extra);
        self.service(name, "longrun", &files);
    }

    /// A longrun that records that it started (its marker, `name`), then sleeps.
    pub fn recorder(&self, name: &str) {
        let marker = self.marker(name);
        self.longrun(
            name,
            &format!("echo started > {}\nexec sleep 1000", marker.display()),
            &[],
        );
    }

    pub fn depends(&self, service: &str, on: &str) {
        let path = self.services.join(service).join("dependencies.d").join(on);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, "").expect("dep");
    }

    /// A file in the test's scratch space that toy services can write to.
    pub fn marker(&self, name: &str) -> PathBuf {
        self.root.join("markers").join(name)
    }

    pub fn markers_dir(&self) -> PathBuf {
        let dir = self.root.join("markers");
        fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    /// Uses the repository's real service definitions instead of toy ones.
    pub fn use_repo_services(&mut self) {
        self.services = super::repo().join("s6-rc.d");
    }

    pub fn start(&mut self, extra: &[&str]) {
        self.start_with(Command::new(env!("CARGO_BIN_EXE_enclave")), extra);
    }

    /// Starts `command` (the enclave binary, or a wrapper such as `unshare`) with init's args.
    pub fn start_with(&mut self, mut command: Command, extra: &[&str]) {
        self.markers_dir();
        let stdout = fs::File::create(&self.stdout).expect("stdout file");
        let stderr = fs::File::create(&self.stderr).expect("stderr file");
        super::without_enclave_env(&mut command)
            .arg("--root")
            .arg(&self.root)
            .arg("init")
            .arg("--services")
            .arg(&self.services)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        self.child = Some(command.spawn().expect("enclave init starts"));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("started").id()
    }

    /// Waits for init to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let child = self.child.as_mut().expect("started");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code().unwrap_or_else(|| {
                    panic!("init killed by a signal: {status:?}\n{}", self.logs())
                });
            }
            assert!(
                Instant::now() < deadline,
                "init did not exit within {timeout:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as the platform stops the container: init must end with 0 within `timeout`.
    pub fn stop_cleanly(&mut self, timeout: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(self.wait_exit(timeout), 0, "{}", self.logs());
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal init");
    }

    pub fn state(&self, name: &str) -> Option<ServiceState> {
        StateDir::new(&Root::new(&self.root)).read(name).ok()
    }

    pub fn wait_status(&self, name: &str, status: Status, timeout: Duration) -> ServiceState {
        let mut last = None;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(state) = self.state(name) {
                if state.status == status {
                    return state;
                }
                last = Some(state);
            }
            assert!(
                Instant::now() < deadline,
                "{name} not {status} within {timeout:?}; last {last:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    pub fn read_marker(&self, name: &str) -> String {
        fs::read_to_string(self.marker(name)).unwrap_or_default()
    }
}

impl Drop for Enclave {
    fn drop(&mut self) {
        // Leave nothing running, whatever the test did: a graceful stop first (services are in
        // their own process groups and only init can stop them), then SIGKILL.
        if let Some(child) = &mut self.child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    super::receivers::free_port()
}
