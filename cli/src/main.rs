//! The `koru` binary: parses the command line, runs it, and turns errors into a message on
//! stderr and the exit code documented in cli/README.md.

use clap::Parser;

fn main() {
    let cli = koru_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koru: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(koru_cli::commands::run(cli)) {
        eprintln!("koru: {e}");
        std::process::exit(e.exit_code());
    }
}
