//! The `tickgate` command, in the shape of xdp-loader: `tickgate COMMAND [options] <ifname>`.
//!
//! `load`/`unload`/`status`/`clean`/`features` manage the XDP program; `run` receives game
//! inputs; `demo` runs the whole pipeline in a throwaway veth lab; `replay` rebuilds a recorded
//! run's frames.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use tickgate::steer;

fn main() -> ExitCode {
    let args = match parse() {
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
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

mod config;
mod demo;
mod features;
mod live;
mod load;
mod replay;
mod ring;
mod run;
mod sink;
mod token;

/// Kernel-bypass ingress for lockstep game servers: steers game UDP ports into AF_XDP.
#[derive(Debug, Parser)]
#[command(name = "tickgate", version, propagate_version = true)]
pub struct Args {
    /// More log output (-v info, -vv debug, -vvv libbpf trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// `tickgate ring ...`.
#[derive(Debug, Subcommand)]
enum RingCommand {
    /// Print a ring's records as JSON lines (frames as `--frames-out` prints them).
    Dump(ring::RingArgs),
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the XDP program to an interface and pin it, so it stays after this command exits.
    Load(load::LoadArgs),
    /// Receive game inputs: attach (unpinned), one AF_XDP worker per RX queue, sequencer, frames.
    Run(Box<run::RunArgs>),
    /// Run the whole pipeline in a throwaway veth lab: synthetic clients, injected loss,
    /// duplication, reordering and junk, live counters, a summary accounting for every packet.
    Demo(demo::DemoArgs),
    /// Rebuild the frames of a run recorded with `run --record` and check their hashes.
    Replay(replay::ReplayArgs),
    /// Read a frame ring (`run --frame-rings`) as a game server would.
    #[command(subcommand)]
    Ring(RingCommand),
    /// Make the private key a game backend shares with tickgate, or mint a connect token.
    Token(token::TokenArgs),
    /// Detach tickgate's program from an interface and remove every pin `load` made.
    Unload {
        /// Interface to detach from.
        iface: String,
    },
    /// Ask the kernel whether an interface supports native XDP, AF_XDP zero-copy and NIC RX timestamps.
    Features {
        /// Interface to ask about.
        iface: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove what tickgate left behind: detach and unpin every pinned attachment (or only
    /// IFACE's), and delete live reports of runs that are no longer running.
    Clean {
        /// Only this interface.
        iface: Option<String>,
    },
    /// Show program, mode, timestamp source, ports and counters of pinned attachments.
    Status {
        /// Interface (default: every interface tickgate has pinned).
        iface: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    /// In the driver (the default; fastest; needs driver support).
    Native,
    /// Generic XDP on the skb (any driver; copy-mode AF_XDP only).
    Skb,
}

impl From<ModeArg> for steer::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Native => Self::Native,
            ModeArg::Skb => Self::Skb,
        }
    }
}

/// Which clock stamps packets.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TimestampsArg {
    /// The NIC clock where the device-bound program attaches (native mode), else the XDP clock.
    Auto,
    /// The NIC hardware clock, or fail.
    Nic,
    /// The XDP-hook TAI clock.
    Xdp,
}

impl From<TimestampsArg> for steer::Timestamps {
    fn from(t: TimestampsArg) -> Self {
        match t {
            TimestampsArg::Auto => Self::Auto,
            TimestampsArg::Nic => Self::Nic,
            TimestampsArg::Xdp => Self::Xdp,
        }
    }
}

/// Parses the process's command line, expanding `run --config FILE` first.
pub fn parse() -> Result<Args, config::ConfigError> {
    use clap::Parser as _;
    Ok(Args::parse_from(config::expand(std::env::args_os().collect())?))
}

/// The flags that say what XDP steers and how, shared by `load` and `run`.
#[derive(Debug, clap::Args)]
pub struct SteerArgs {
    /// Game UDP ports to steer into AF_XDP (comma-separated).
    #[arg(short, long, value_delimiter = ',', required = true)]
    pub port: Vec<u16>,
    /// Attach mode.
    #[arg(short, long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Receive-timestamp clock.
    #[arg(short, long, value_enum, default_value_t = TimestampsArg::Auto)]
    pub timestamps: TimestampsArg,
    /// Shed floods: allow each source address PPS game packets per second, in bursts of up to
    /// BURST (default PPS/10, at least 1); valid game packets over the limit are dropped and
    /// counted as rate_limited. The budget is per source and per CPU. Off when not given.
    #[arg(long, value_name = "PPS[:BURST]")]
    pub rate_limit: Option<tickgate::steer::rate_limit::RateLimit>,
    /// Also serve protocol v1: unauthenticated inputs, in which anyone who can reach the port
    /// speaks for any client id. For closed LANs and tests only; without it XDP drops v1
    /// packets (bad_version) and only protocol v2 sessions (run --key-file) reach the game.
    #[arg(long)]
    pub insecure_v1: bool,
}

impl SteerArgs {
    /// What to attach to `ifname`.
    pub fn load_options(&self, ifname: &str, force: bool) -> steer::LoadOptions {
        steer::LoadOptions {
            ifname: ifname.to_owned(),
            ports: self.port.clone(),
            mode: self.mode.into(),
            timestamps: self.timestamps.into(),
            force,
            rate_limit: self.rate_limit,
            insecure_v1: self.insecure_v1,
        }
    }
}

/// Runs one parsed command line.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Load(a) => load::load(&a),
        Command::Run(a) => run::run(&a),
        Command::Demo(a) => demo::demo(&a),
        Command::Replay(a) => replay::replay(&a),
        Command::Ring(RingCommand::Dump(a)) => ring::dump(&a),
        Command::Token(a) => token::token(&a),
        Command::Unload { iface } => load::unload(&iface),
        Command::Clean { iface } => load::clean(iface.as_deref()),
        Command::Status { iface, json } => load::status(iface.as_deref(), json),
        Command::Features { iface, json } => features::features(&iface, json),
    }
}
