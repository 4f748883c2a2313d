//! The tera templates of `gen/templates/`, compiled into the binary once, and the one
//! way renderers fill them in.

use std::sync::OnceLock;

/// The templates, compiled once.
pub(crate) fn templates() -> &'static tera::Tera {
    static T: OnceLock<tera::Tera> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        let all = [
            (
                "server.conf",
                include_str!("../../templates/server.conf.tera"),
            ),
            (
                "docker-compose.yml",
                include_str!("../../templates/docker-compose.yml.tera"),
            ),
            (
                "topology.md",
                include_str!("../../templates/topology.md.tera"),
            ),
            (
                "install.sh",
                include_str!("../../templates/deploy/install.sh.tera"),
            ),
            (
                "unit.service",
                include_str!("../../templates/deploy/unit.service.tera"),
            ),
            (
                "terraform/cloud-README.md",
                include_str!("../../templates/terraform/cloud-README.md.tera"),
            ),
            (
                "terraform/aws-README.md",
                include_str!("../../templates/terraform/aws-README.md.tera"),
            ),
            (
                "terraform/gcp-README.md",
                include_str!("../../templates/terraform/gcp-README.md.tera"),
            ),
            (
                "terraform/router-README.md",
                include_str!("../../templates/terraform/router-README.md.tera"),
            ),
            (
                "terraform/onprem-README.md",
                include_str!("../../templates/terraform/onprem-README.md.tera"),
            ),
        ];
        // The templates are part of the binary and tested; a broken one is a bug here.
        // They are added together, so a template may extend one listed after it.
        if let Err(e) = t.add_raw_templates(all) {
            panic!("templates: {e:?}");
        }
        t
    })
}

/// Render a template, with tera's whole error chain on failure.
pub(crate) fn render(name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
    templates().render(name, ctx).map_err(|e| {
        let mut msg = format!("rendering {name}: {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        anyhow::anyhow!(msg)
    })
}
