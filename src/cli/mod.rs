//! The command line: argument parsing and printing. Each command calls into
//! the library and prints its result, as text for people or `--json` for
//! scripts. Errors end as one line on standard error and a non-zero exit.

/// `println!` for the command line's output: when its reader has gone
/// (`herald clients show ID | head`), herald stops quietly instead of
/// panicking, as `cat` would.
macro_rules! say {
    () => {
        $crate::cli::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

mod archive;
mod bench;
mod calendar;
pub(crate) mod campaigns;
mod channels;
mod clients;
pub(crate) mod import;
mod inbound;
mod report;
pub(crate) mod runs;
mod segment;
pub(crate) mod seminars;
mod serve;
mod suppress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::store::{self, Store};

/// Writes one line of output; see [`say!`].
pub(crate) fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => panic!("cannot write to standard output: {e}"),
    }
}

/// herald: campaign and marketing automation for securities firms.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: herald.toml in the working folder, if present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database: sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://herald.db]
    #[arg(
        long,
        global = true,
        env = "HERALD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database (or bring its schema up to date)
    Init,
    /// Import clients or event history from a file
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Look at clients
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Count and sample the clients a segment rule selects
    Segment(segment::SegmentArgs),
    /// Work with segment rules
    #[command(subcommand)]
    Rule(segment::RuleCommand),
    /// Work with campaign files
    #[command(subcommand)]
    Campaigns(campaigns::CampaignsCommand),
    /// Work with the configured channels and providers
    #[command(subcommand)]
    Channels(channels::ChannelsCommand),
    /// Render exactly what one client would receive from a campaign; sends nothing
    Preview(campaigns::PreviewArgs),
    /// Plan a campaign's run (segment, compliance gates) and send it in the foreground
    Send(runs::SendArgs),
    /// List the latest runs
    Runs(runs::RunsArgs),
    /// Seminar drives: check the files, list them, record changes, remind, check in, report
    #[command(subcommand, alias = "seminars")]
    Seminar(seminars::SeminarsCommand),
    /// Returned mail and unsubscribe mail
    #[command(subcommand)]
    Inbound(inbound::InboundCommand),
    /// What a campaign or run achieved: the funnel by channel, branch and advisor
    Report(report::ReportArgs),
    /// Run continuously: plan scheduled runs, send what is due, serve /healthz and /metrics
    Serve(serve::ServeArgs),
    /// What is scheduled next, what is running, queue depths and the live instances
    Status(serve::StatusArgs),
    /// Work with one run
    #[command(subcommand)]
    Run(runs::RunCommand),
    /// The do-not-contact list
    #[command(subcommand)]
    Suppress(suppress::SuppressCommand),
    /// Consents: lifting an opt-out herald recorded
    #[command(subcommand)]
    Consent(suppress::ConsentCommand),
    /// Who did what: launches, approvals, consent restores, list changes
    Audit(archive::AuditArgs),
    /// What was sent, kept for compliance
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// The exchange calendar that trading-day schedules follow
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// Measure herald's hot paths
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Write realistic synthetic clients (and event history) for demos and benchmarks
    DemoData(crate::demo::DemoDataArgs),
    /// Show what herald does, end to end, in a folder of its own with its own
    /// herald.toml and SQLite database; needs no server
    Demo(crate::demo::DemoArgs),
}

/// Parses the command line, runs the command, and turns its outcome into
/// an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    // One line: the chain of contexts, outermost first.
    // Some causes already repeat their source's text; say each thing once.
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    eprintln!("herald: error: {line}");
    ExitCode::FAILURE
}

/// A name, key or reason as given, refused when blank: an audit entry by
/// nobody, or a run with an empty key, tells nothing.
fn non_blank(raw: &str) -> Result<String, String> {
    match raw.trim() {
        "" => Err("must not be blank".into()),
        s => Ok(s.to_owned()),
    }
}

/// Logs to standard error: warnings only for commands people run, what it
/// does for `herald serve` (which operators read in the journal), as JSON
/// lines when asked. `HERALD_LOG` overrides the filter, except that the
/// template engine never logs below info.
fn init_logging(cli: &Cli) {
    let (serving, json) = match &cli.command {
        Command::Serve(args) => {
            // The config is read again (with its errors) by the command.
            let from_file = Config::load(
                cli.global.config.as_deref(),
                cli.global.database_url.clone(),
            )
            .is_ok_and(|c| c.serve.log_json);
            (true, args.log_json || from_file)
        }
        _ => (false, false),
    };
    // sqlx warns of every statement over a second; planning over a
    // million clients runs such statements by design.
    let default = if serving {
        "warn,herald=info,sqlx=error"
    } else {
        "warn,sqlx=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        // The template engine's debug lines print every value a helper is
        // given, clients' addresses among them: personal data stays out of
        // logs whatever HERALD_LOG asks for.
        .add_directive("handlebars=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The demo keeps its own configuration and database in its folder: a
/// --config or --database-url given for it would be silently ignored.
/// (HERALD_DATABASE_URL set in the environment is meant for other commands.)
fn refuse_for_demo(global: &GlobalArgs) -> Result<()> {
    let from_env = std::env::var("HERALD_DATABASE_URL").ok();
    let url_given = global.database_url.is_some() && global.database_url != from_env;
    if global.config.is_some() || url_given {
        anyhow::bail!(
            "herald demo works in its own folder (--dir) with its own herald.toml and SQLite database: --config and --database-url do not apply to it"
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => {
            refuse_for_demo(&cli.global)?;
            crate::demo::run(args).await
        }
        Command::DemoData(args) => crate::demo::write_demo_data(&args).map(|()| ExitCode::SUCCESS),
        Command::Segment(args) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            segment::segment(args, &config).await
        }
        Command::Rule(cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            segment::rule(cmd, &config).await
        }
        Command::Campaigns(cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            campaigns::run(cmd, &config).await
        }
        Command::Channels(cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            channels::run(cmd, &config).await
        }
        Command::Seminar(cmd) if !seminars::needs_store(&cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            seminars::run(cmd, &config)
        }
        Command::Calendar(cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            calendar::run(cmd, &config)
        }
        Command::Bench(cmd) => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            bench::run(cmd, &config).await
        }
        command => {
            let config = Config::load(cli.global.config.as_deref(), cli.global.database_url)?;
            let store = open_store(&config).await?;
            let result = match command {
                Command::Init => init(&*store, &config).await,
                Command::Import(cmd) => import::run(cmd, &*store, &config).await,
                Command::Clients(cmd) => clients::run(cmd, &*store, &config).await,
                Command::Preview(args) => campaigns::preview(args, &*store, &config).await,
                Command::Send(args) => runs::send(args, &*store, &config).await,
                Command::Runs(args) => runs::runs(args, &*store).await,
                Command::Serve(args) => serve::serve(args, store.clone(), config.clone()).await,
                Command::Status(args) => serve::status(args, &*store, &config).await,
                Command::Report(args) => report::report(args, &*store).await,
                Command::Inbound(cmd) => inbound::run(cmd, store.clone(), &config).await,
                Command::Run(cmd) => runs::run_command(cmd, &*store, &config).await,
                Command::Suppress(cmd) => suppress::suppress(cmd, &*store).await,
                Command::Consent(cmd) => suppress::consent(cmd, &*store).await,
                Command::Archive(cmd) => archive::run(cmd, &*store).await,
                Command::Audit(args) => archive::audit(args, &*store).await,
                Command::Seminar(cmd) => seminars::run_with_store(cmd, &*store, &config).await,
                Command::Segment(_)
                | Command::Rule(_)
                | Command::Campaigns(_)
                | Command::Channels(_)
                | Command::Calendar(_)
                | Command::Bench(_) => unreachable!("handled above"),
                Command::Demo(_) | Command::DemoData(_) => unreachable!("handled above"),
            };
            store.close().await;
            result
        }
    }
}

/// Opens the configured database, applying any pending migrations.
pub async fn open_store(config: &Config) -> Result<std::sync::Arc<dyn Store>> {
    store::open(&config.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", config.database_url))
}

async fn init(store: &dyn Store, config: &Config) -> Result<ExitCode> {
    let clients = store.count_clients().await?;
    say!(
        "database ready: {} ({clients} clients)",
        config.database_url
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints a value as pretty JSON on standard output.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Problems found in the user's files, as one error (the CLI's one line).
pub fn problems_error(problems: Vec<crate::diagnostic::Problem>) -> anyhow::Error {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("{}", lines.join("; "))
}

/// `1234567` as `1,234,567`, for counts people read.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
