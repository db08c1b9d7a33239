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

/// How long mimalloc keeps freed memory before handing it back to the OS, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Its default (10 ms) returns pages between two
/// bursts of calls and takes them back at once: every re-fault zeroes a fresh (often
/// huge) page, a third of a call set-up's CPU in profiles. A second keeps the working set
/// mapped under steady load and still returns memory after a peak.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 1_000;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (its default is 10 ms).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 16;
const MI_PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 10;

extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: plain option accessors of the linked mimalloc; an option index out of range
    // is ignored by mimalloc. The default-value check guards against a mimalloc whose
    // option numbering moved (then nothing is changed).
    unsafe {
        if mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
            mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
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
