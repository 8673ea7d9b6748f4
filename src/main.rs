//! The `swimkv` binary: parse flags, set up logging, run a node.
//!
//! Exit status 2 for a refused configuration or a port in use, with a one-line message.

use clap::Parser;
use std::io::Write;
use swimkv::cli::Cli;

fn main() {
    let config = Cli::parse().into_config();
    if let Err(e) = config.validate() {
        eprintln!("swimkv: invalid configuration: {e}");
        std::process::exit(2);
    }
    let node = config.node_name();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
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
    if let Err(e) = swimkv::node::run(config) {
        eprintln!("swimkv: {e}");
        std::process::exit(2);
    }
}
