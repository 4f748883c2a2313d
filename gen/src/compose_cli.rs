//! Which compose this machine has: the Compose v2 plugin (`docker compose`) or v1
//! (`docker-compose`). The bundle's compose file runs with either; the tests check it
//! with each one present, and the e2e suite drives the one it finds.

use std::process::Command;

/// A compose CLI: the program, and the arguments before compose's own.
pub type Cli = (&'static str, &'static [&'static str]);

/// The compose CLIs on this machine, v2 first.
pub fn clis() -> Vec<Cli> {
    let candidates: [Cli; 2] = [("docker", &["compose"]), ("docker-compose", &[])];
    candidates
        .into_iter()
        .filter(|(program, pre)| {
            Command::new(program)
                .args(*pre)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect()
}

/// A command for the preferred compose CLI, or `None` when there is none.
pub fn command() -> Option<Command> {
    let (program, pre) = clis().into_iter().next()?;
    let mut c = Command::new(program);
    c.args(pre);
    Some(c)
}
