//! The Docker engine through its CLI: the image under test, containers, their logs, and the
//! address of the default bridge that containers reach the host on.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The image the end-to-end tests run, or why they are skipped: `ENCLAVE_E2E_IMAGE` names it
/// (scripts/test.sh builds it with scripts/build-image.sh and sets it), and a Docker engine
/// must answer.
pub fn image_or_skip_reason() -> Result<String, String> {
    let image = std::env::var("ENCLAVE_E2E_IMAGE").map_err(|_| {
        "ENCLAVE_E2E_IMAGE is not set (scripts/test.sh builds the image with \
         scripts/build-image.sh and sets it when a Docker engine is available)"
            .to_owned()
    })?;
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map_err(|e| format!("docker is not installed: {e}"))?;
    if !info.status.success() {
        return Err(format!(
            "the Docker engine does not answer: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        ));
    }
    let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    if !inspect.status.success() {
        return Err(format!(
            "image {image} does not exist (scripts/build-image.sh builds it)"
        ));
    }
    Ok(image)
}

/// Runs `docker args…` and returns its output (whatever the exit status).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

/// Runs `docker args…`, which must succeed; returns its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The host's address on Docker's default bridge: what `host.docker.internal:host-gateway`
/// resolves to inside a container. Host-side servers listen here so containers reach them.
/// Docker names it in the network's IPAM configuration, or (older engines) only on the bridge
/// interface itself.
pub fn bridge_gateway() -> String {
    let gateway = docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    if gateway.parse::<std::net::Ipv4Addr>().is_ok() {
        return gateway;
    }
    let interface = docker_ok(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        r#"{{index .Options "com.docker.network.bridge.name"}}"#,
    ]);
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &interface])
        .output()
        .expect("ip (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no IPv4 address on the bridge {interface:?}: {text}"))
}

/// A container known by name. Dropping it removes the container and `volumes` (so a failed
/// test leaves nothing behind) unless `E2E_KEEP=1`.
pub struct Container {
    pub name: String,
    pub volumes: Vec<String>,
}

impl Container {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            volumes: Vec::new(),
        }
    }

    /// `docker run --detach` of `image` with `config` mounted where the enclave reads it (and
    /// Docker's anonymous volumes for /sp/secrets and /sp/postgresql/data).
    pub fn run(name: &str, image: &str, config: &std::path::Path) -> Self {
        let container = Self::named(name);
        docker_ok(&[
            "run",
            "--detach",
            "--name",
            name,
            "--mount",
            &format!(
                "type=bind,src={},dst=/sp/configurations/configuration.json,readonly",
                config.display()
            ),
            image,
        ]);
        container
    }

    pub fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "--format", format, &self.name])
    }

    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    pub fn exit_code(&self) -> i32 {
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("an exit code")
    }

    /// `docker exec <c> args…` → (success, stdout, stderr).
    pub fn exec(&self, args: &[&str]) -> (bool, String, String) {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        let out = docker(&full);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `docker exec` that must succeed; its stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.exec(args);
        assert!(
            ok,
            "docker exec {} {} failed: {stderr}{stdout}",
            self.name,
            args.join(" ")
        );
        stdout
    }

    /// Whether `path` exists inside the container.
    pub fn exists(&self, path: &str) -> bool {
        self.exec(&["test", "-e", path]).0
    }

    /// Everything the container wrote to stdout and stderr (every service's lines, prefixed).
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits for the container to exit; its exit code, or None when `timeout` passed first.
    pub fn wait_exit(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return Some(self.exit_code());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Waits until `/init status --check` passes inside (every longrun up, every oneshot
    /// finished); panics with the status table and the log's tail when the container stops or
    /// `timeout` passes. Returns how long it took.
    pub fn wait_all_up(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.exec(&["/init", "status", "--check"]).0 {
                return started.elapsed();
            }
            assert!(
                self.running(),
                "{} stopped during its boot (exit {}):\n{}",
                self.name,
                self.exit_code(),
                tail(&self.logs(), 60)
            );
            if started.elapsed() > timeout {
                let (_, status, _) = self.exec(&["/init", "status"]);
                panic!(
                    "{}: not every service up after {timeout:?}:\n{status}\n{}",
                    self.name,
                    tail(&self.logs(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::env::var("E2E_KEEP").as_deref() == Ok("1") {
            eprintln!("E2E_KEEP=1: left container {} and its volumes", self.name);
            return;
        }
        let _ = docker(&["rm", "--force", "--volumes", &self.name]);
        for volume in &self.volumes {
            let _ = docker(&["volume", "rm", "--force", volume]);
        }
    }
}

/// The last `lines` lines of `text` (for failure messages).
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
