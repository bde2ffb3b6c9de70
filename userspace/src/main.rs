//! The `tickgate` command: load, unload and inspect the XDP program.
use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tickgate: config: {e}");
            return ExitCode::FAILURE;
        }
    };
    env_logger::Builder::new()
        .filter_level(match args.verbose {
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        })
        .format_timestamp(None)
        .init();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
