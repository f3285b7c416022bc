//! The `daxguard` command. `main` parses, calls [`run`], writes the output
//! once, and maps the result to the documented exit status:
//! 0 registrable / fine, 1 refused (fs-DAX) or doctor failure, 2 could not
//! judge or bad input, 3 probe disagreement; `run` returns CMD's own status.
//! Every error is one line on stderr: `daxguard: <what is wrong>`.
//!
//! Unsafe code is denied here and allowed back only in the files that call C:
//! `region` (mmap), `uname` and `verbs` (libibverbs), and in `watch/`: `sys`
//! (sigaction), `decode` (the record) and `skel` (the generated skeleton),
//! each under its `# Safety`.
#![deny(unsafe_code)]

mod access;
mod activate;
mod atomic;
mod cdi;
mod check;
mod cli;
mod doctor;
mod enable;
mod generate;
mod interception;
mod metrics;
mod output;
mod probe;
mod process;
mod prom;
mod region;
mod report;
mod run;
mod scan;
mod shim;
mod uname;
mod units;
mod verbs;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::output::{Done, EXIT_UNJUDGED, Exit};

fn run(cli: &Cli) -> anyhow::Result<Done> {
    match &cli.command {
        Command::Check(a) => check::run(a, cli.json),
        Command::Scan(a) => scan::run(a, cli.json),
        Command::Run(a) => run::run(a, cli.json),
        Command::Probe(a) => probe::run(a, cli.json),
        Command::Doctor(_) => doctor::run(cli.json),
        Command::Watch(a) => watch::run(a, cli.json),
        Command::Enable(a) => enable::enable(a, cli.json),
        Command::Disable(a) => enable::disable(a, cli.json),
        Command::Metrics(a) => metrics::run(a, cli.json),
        Command::Generate(a) => generate::run(a),
    }
}

/// Clap's multi-line usage error, folded into one line.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let msg = parts.join(" ");
    format!("{} (see --help)", msg.strip_prefix("error: ").unwrap_or(&msg))
}

fn say_error(msg: &str) {
    // One line, whatever the message held.
    let _ = writeln!(std::io::stderr(), "daxguard: {}", msg.replace('\n', " "));
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                return ExitCode::from(EXIT_UNJUDGED);
            }
            _ => {
                say_error(&one_line(&e));
                return ExitCode::from(EXIT_UNJUDGED);
            }
        },
    };
    match run(&cli) {
        Ok(done) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(done.stdout.as_bytes()).and_then(|()| out.flush()) {
                // `daxguard scan | head`: the reader had enough; not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    say_error(&format!("cannot write output: {e}"));
                    ExitCode::from(EXIT_UNJUDGED)
                }
                _ => ExitCode::from(done.code),
            }
        }
        Err(e) => {
            say_error(&format!("{e:#}"));
            ExitCode::from(e.downcast_ref::<Exit>().map_or(EXIT_UNJUDGED, |x| x.code))
        }
    }
}
