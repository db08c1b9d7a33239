//! `ctiswitch` command line: `serve` (default), `migrate`, `--config FILE`, `--help`.

use std::path::PathBuf;

/// SIP and call handling allocate many small short-lived objects; glibc's allocator spent
/// a quarter of the CPU of a call set-up (trimming and re-faulting its heap) in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

const USAGE: &str = "\
ctiswitch — an actor-based telephony switch for call centers

USAGE:
    ctiswitch [serve] [--config FILE]    serve SIP, RTP and HTTP (the default command)
    ctiswitch migrate [--config FILE]    apply database migrations and exit
    ctiswitch --help                     print this help

Every configuration key has a default; with no file, SIP listens on UDP and TCP 5060,
HTTP on 12121, and data lives in ./data. Any key can be set from the environment as
CTISWITCH_<SECTION>_<KEY>, e.g. CTISWITCH_SIP_LISTEN=127.0.0.1:15060; the environment
wins over the file.";

enum Command {
    Serve,
    Migrate,
    Help,
}

fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<(Command, Option<PathBuf>)> {
    let mut command = None;
    let mut config = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok((Command::Help, None)),
            "-c" | "--config" => {
                let path = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--config needs a file path"))?;
                config = Some(PathBuf::from(path));
            }
            s if s.starts_with("--config=") => {
                config = Some(PathBuf::from(&s["--config=".len()..]));
            }
            "serve" | "migrate" if command.is_none() => {
                command = Some(if arg == "serve" {
                    Command::Serve
                } else {
                    Command::Migrate
                });
            }
            other => anyhow::bail!("unexpected argument `{other}` (try --help)"),
        }
    }
    Ok((command.unwrap_or(Command::Serve), config))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctiswitch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let (command, config_path) = parse_args(std::env::args().skip(1))?;
    if let Command::Help = command {
        println!("{USAGE}");
        return Ok(());
    }
    let config = ctiswitch::Config::load(config_path.as_deref())?;
    ctiswitch::init_tracing(&config.log.level)?;
    let runtime = ctiswitch::build_system();
    match command {
        Command::Serve => runtime.block_on(ctiswitch::run(config, ctiswitch::shutdown_signal()))?,
        Command::Migrate => runtime.block_on(ctiswitch::migrate(&config))?,
        Command::Help => {}
    }
    Ok(())
}
