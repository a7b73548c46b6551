//! `royalty-ingest console user add NAME --role viewer|operator`: creates (or replaces) a
//! console user. The password is never a flag: it comes from ROYALTY_CONSOLE_PASSWORD, a
//! prompt on the terminal (not echoed, asked twice), or the first line of stdin.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};

use super::auth::{self, Role};
use crate::config::DatabaseArgs;
use crate::db;

/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 12;

/// `console user …`.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create a console user, or replace the role and password of an existing one. The
    /// password is read from ROYALTY_CONSOLE_PASSWORD, else a prompt (not echoed), else
    /// the first line of stdin; at least 12 characters.
    Add(AddArgs),
}

/// Settings of `console user add`.
#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// The user's name (letters, digits, `.`, `_`, `@`, `-`; up to 64).
    pub name: String,

    /// viewer (reads every page) or operator (also replays, resolves, acknowledges).
    #[arg(
        long,
        env = "ROYALTY_CONSOLE_USER_ROLE",
        value_parser = PossibleValuesParser::new(["viewer", "operator"])
    )]
    pub role: String,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Runs a `console user` subcommand.
pub async fn run(command: &UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args).await,
    }
}

async fn add(args: &AddArgs) -> anyhow::Result<()> {
    let name = args.name.trim();
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')),
        "{name:?} is not a user name: letters, digits, '.', '_', '@' and '-', up to 64"
    );
    let role = Role::parse(&args.role).context("--role is viewer or operator")?;
    let password = read_password()?;
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "the password is shorter than {MIN_PASSWORD_CHARS} characters"
    );
    let pool = db::connect(&args.database.url()?, 1).await?;
    db::migrate(&pool).await?;
    auth::put_user(&pool, name, role, &password).await?;
    println!("console user {name} is a {}", role.word());
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("ROYALTY_CONSOLE_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let second = prompt_hidden("Again: ")?;
        anyhow::ensure!(first == second, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal with echo off (restored however the read ends).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let fd = libc::STDIN_FILENO;
    // SAFETY: tcgetattr/tcsetattr on stdin, a terminal (checked by the caller), with a
    // termios value the first call filled in.
    let mut saved = unsafe { std::mem::zeroed::<libc::termios>() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut saved) } == 0 && {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        // SAFETY: as above, restoring the value tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read.context("cannot read the password from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
