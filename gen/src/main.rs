//! `canopy`: the topology tool. `gen` writes the bundle, `validate` and `lint` check a
//! topology file, `graph` prints its diagram, `check-conf` checks server configs as
//! canopy-server and nats-server would (`-t`).
//!
//! Exit codes: 0 ok, 1 findings (invalid topology, lint warnings, a failed check),
//! 2 usage errors (clap's own).

use canopy_gen::{diag::Report, model, LoadError};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  canopy validate examples/hub-and-spoke.hcl
  canopy lint examples/hub-and-spoke.hcl
  canopy gen examples/hub-and-spoke.hcl -o bundle
  docker compose -f bundle/compose/docker-compose.yml up -d
  canopy graph examples/multi-region.hcl > diagram.mmd
  canopy check-conf bundle/conf/*.conf      (from the bundle directory)

The topology language is described in docs/topology.md.";

#[derive(Parser)]
#[command(
    name = "canopy",
    version,
    about = "NATS leaf-node topologies: configs, PKI, compose bundle and diagram from one file",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the bundle: conf/, pki/, secrets/, compose/ and topology.md
    #[command(
        after_help = "An existing pki/ and secrets/ in DIR are kept: the same topology gives the same bundle.\nDIR/.canopy-manifest lists the files gen wrote; a re-run replaces those and keeps everything else\n(tfvars, Terraform state, bin/, .git, notes). Private files get a .gitignore beside them."
    )]
    Gen {
        /// The topology file (HCL)
        file: PathBuf,
        /// Output directory (`.` works): gen replaces the files it wrote there, nothing else
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        /// Re-issue every server and client certificate under the same CA
        #[arg(long)]
        rotate_certs: bool,
        /// Write into a directory that holds no bundle, or over files gen did not
        /// write; gen still deletes nothing it did not write
        #[arg(long)]
        force: bool,
    },
    /// Check a topology file; print every error with its place
    Validate { file: PathBuf },
    /// Validate, then warn about risky but legal choices
    Lint { file: PathBuf },
    /// Print the topology as a mermaid flowchart
    Graph { file: PathBuf },
    /// Check nats-server config files (errors and warnings both fail, as with `nats-server -t`)
    CheckConf {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn load(file: &Path) -> Result<canopy_gen::Loaded, ExitCode> {
    match canopy_gen::load(file) {
        Ok(l) => Ok(l),
        Err(LoadError::Invalid(r)) => {
            eprint!("{r}");
            eprintln!(
                "{}: {} error{}",
                r.source.path,
                r.errors(),
                if r.errors() == 1 { "" } else { "s" }
            );
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate { file } => match load(&file) {
            Ok(l) => {
                println!(
                    "{}: ok ({} servers, {} leaf links, {} site links)",
                    file.display(),
                    l.model.servers.len(),
                    l.model
                        .servers
                        .iter()
                        .map(|s| s.remotes.len())
                        .sum::<usize>(),
                    l.model.links.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Lint { file } => match load(&file) {
            Ok(l) => {
                let warnings = model::lint(&l.topology, &l.model);
                if warnings.is_empty() {
                    println!("{}: ok, no warnings", file.display());
                    return ExitCode::SUCCESS;
                }
                let n = warnings.len();
                let r = Report {
                    source: l.source,
                    diagnostics: warnings,
                };
                eprint!("{r}");
                eprintln!(
                    "{}: {n} warning{}",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                );
                ExitCode::FAILURE
            }
            Err(code) => code,
        },
        Command::Graph { file } => match load(&file) {
            Ok(l) => {
                print!("{}", canopy_gen::render::diagram::mermaid(&l.model));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Gen {
            file,
            out,
            rotate_certs,
            force,
        } => {
            let l = match load(&file) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let opts = canopy_gen::GenOptions {
                rotate_certs,
                force,
            };
            let bundle = match canopy_gen::generate(&l.model, &out, &opts) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            // Every config is checked where it will run: paths in it are relative to
            // the bundle directory.
            if let Err(e) = std::env::set_current_dir(&out) {
                eprintln!("error: entering {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            let mut ok = true;
            for s in &l.model.servers {
                let conf = canopy_gen::render::layout::conf_path(&s.name);
                if let Err(d) = canopy_gen::check_conf(Path::new(&conf)) {
                    eprintln!("{d}");
                    ok = false;
                }
            }
            println!(
                "{}: wrote {} files ({} server configs) to {}",
                file.display(),
                bundle.files.len(),
                l.model.servers.len(),
                out.display()
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: a generated config failed the server's check (a bug in canopy: please report it)");
                ExitCode::FAILURE
            }
        }
        Command::CheckConf { files } => {
            let mut ok = true;
            for f in &files {
                match canopy_gen::check_conf(f) {
                    Ok(()) => println!("{}: ok", f.display()),
                    Err(d) => {
                        eprintln!("{d}");
                        ok = false;
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
