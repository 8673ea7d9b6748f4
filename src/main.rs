//! The `swimkv` binary: parse flags, set up logging, run a node; or, as
//! `swimkv healthcheck [<port>]`, check a node's `/health` (see `healthcheck.rs`).
//!
//! Exit status 2 for a refused configuration, a refused data directory or a port
//! in use, with a one-line message; 3 after a failed fsync.

use clap::Parser;
use std::io::Write;
use swimkv::cli::Cli;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("healthcheck") {
        std::process::exit(swimkv::healthcheck::main(&args[2..]));
    }
    let config = Cli::parse().into_config();
    if let Err(e) = config.validate() {
        eprintln!("swimkv: invalid configuration: {e}");
        std::process::exit(2);
    }
    let node = config.node_name();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,fjall=warn,lsm_tree=warn"),
    )
    .format(move |buf, record| {
        writeln!(
            buf,
            "{} {:5} [{}] {}: {}",
            buf.timestamp_millis(),
            record.level(),
            node,
            record.target(),
            record.args()
        )
    })
    .init();
    match swimkv::node::run(config) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("swimkv: {e}");
            std::process::exit(2);
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
