//! The e2e harness: build the images once, generate a bundle from an example with the
//! gen library, bring it up with docker-compose (one network per site, linksim between
//! them), drive it from the host through the ports compose publishes on 127.0.0.1,
//! and take everything down again — containers, networks, volumes and the images the
//! run built — pass or fail.
//!
//! It drives the docker CLI and whichever compose this machine has (the v2 plugin, else
//! docker-compose v1), as an operator would.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether a Docker daemon answers and a compose CLI (either kind) is here.
pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
        && !canopy_gen::compose_cli::clis().is_empty()
}

/// A command for the machine's preferred compose CLI.
fn compose_command() -> Result<Command> {
    canopy_gen::compose_cli::command()
        .ok_or_else(|| anyhow!("neither `docker compose` nor `docker-compose` is installed"))
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The images one run built (tag unique to the run); removed on drop.
pub struct Images {
    pub tag: String,
}

impl Images {
    /// Build canopy-server, canopy-linksim and nats-official images with images/build-image.sh.
    pub fn build() -> Result<Images> {
        let tag = format!("e2e-{}", std::process::id());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run(Command::new("bash")
            .arg(root.join("images/build-image.sh"))
            .env("CANOPY_TAG", &tag)
            .current_dir(&root))?;
        Ok(Images { tag })
    }

    pub fn canopy(&self) -> String {
        format!("canopy-server:{}", self.tag)
    }
    pub fn linksim(&self) -> String {
        format!("canopy-linksim:{}", self.tag)
    }
    pub fn official(&self) -> String {
        format!("nats-official:{}", self.tag)
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for image in [self.canopy(), self.linksim(), self.official()] {
            let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
        }
    }
}

/// A generated bundle running under docker-compose; `down -v` on drop.
pub struct Running {
    pub dir: tempfile::TempDir,
    pub project: String,
    pub model: canopy_gen::model::Model,
    up: bool,
}

impl Running {
    /// Generate `example` (a file in examples/) with `adjust` applied to the model, and
    /// bring it up; waits until every service with a healthcheck is healthy.
    pub fn start(
        example: &str,
        images: &Images,
        adjust: impl FnOnce(&mut canopy_gen::model::Model),
    ) -> Result<Running> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(example);
        let loaded = canopy_gen::load(&path).map_err(|e| anyhow!("{e}"))?;
        let mut model = loaded.model;
        model.image = images.canopy();
        for s in model.servers.iter_mut() {
            s.image = if s.image.starts_with("nats-official") {
                images.official()
            } else {
                images.canopy()
            };
        }
        adjust(&mut model);
        let dir = tempfile::tempdir()?;
        let bundle = dir.path().join("bundle");
        canopy_gen::generate(&model, &bundle, &Default::default())?;
        // The link image follows the run's tag.
        let compose = bundle.join(canopy_gen::render::compose::PATH);
        let text = std::fs::read_to_string(&compose)?.replace(
            canopy_gen::render::compose::LINKSIM_IMAGE,
            &images.linksim(),
        );
        std::fs::write(&compose, text)?;
        let project = format!(
            "e2e{}{}",
            std::process::id(),
            example.trim_end_matches(".hcl").replace('-', "")
        );
        let r = Running {
            dir,
            project,
            model,
            up: true,
        };
        r.compose(&["up", "-d"])?;
        r.wait_healthy(Duration::from_secs(90))?;
        Ok(r)
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    pub fn compose(&self, args: &[&str]) -> Result<String> {
        run(compose_command()?
            .args(["-p", &self.project, "-f", "compose/docker-compose.yml"])
            .args(args)
            .current_dir(self.bundle()))
    }

    /// The container of a compose service.
    pub fn container(&self, service: &str) -> Result<String> {
        Ok(self.compose(&["ps", "-q", service])?.trim().to_string())
    }

    pub fn wait_healthy(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let ids = self.compose(&["ps", "-q"])?;
            let mut pending = Vec::new();
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let state = run(Command::new("docker").args([
                    "inspect",
                    "--format",
                    "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
                    id,
                ]))?;
                let parts: Vec<&str> = state.split_whitespace().collect();
                if parts.get(1) != Some(&"running")
                    || !matches!(parts.get(2), Some(&"healthy") | Some(&"none"))
                {
                    pending.push(state.trim().to_string());
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs = self.compose(&["logs", "--tail=20"]).unwrap_or_default();
                bail!("not healthy after {within:?}: {pending:?}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A generated user's password.
    pub fn password(&self, user: &str) -> String {
        std::fs::read_to_string(self.bundle().join(format!("secrets/{user}.password")))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The host ports compose publishes for a server: (client, monitoring).
    pub fn ports(&self, server: &str) -> (u16, u16) {
        let svc = canopy_gen::render::compose::services(&self.model);
        let s = svc
            .iter()
            .find(|s| s.name == server)
            .unwrap_or_else(|| panic!("no server {server}"));
        (s.host_client_port, s.host_http_port)
    }

    /// The host port of a link's linksim API.
    pub fn link_api(&self, link: &str) -> u16 {
        let i = self
            .model
            .links
            .iter()
            .position(|l| l.name == link)
            .unwrap_or_else(|| panic!("no link {link}"));
        canopy_gen::render::compose::link_api_port(i)
    }

    pub fn down(&mut self) {
        if self.up {
            let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
            self.up = false;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.down();
    }
}

/// A plain HTTP request to 127.0.0.1:`port`; returns the body.
pub fn http(method: &str, port: u16, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out))
}

pub fn json(port: u16, path: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&http("GET", port, path)?)?)
}
