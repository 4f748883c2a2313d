//! `canopy`: the topology tool. Today: `canopy check-conf FILE...` checks server
//! configs as canopy-server and nats-server would (`-t`). `gen`, `validate`, `lint`
//! and `graph` over a topology file come with issue #6.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "canopy",
    about = "NATS leaf-node topologies: configs, PKI, compose and Terraform from one file"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check nats-server config files (errors and warnings both fail, as with `nats-server -t`)
    CheckConf {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
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
