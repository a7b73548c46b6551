//! The configuration file (`--config FILE` or `ROYALTY_CONFIG`): TOML whose keys are the
//! flags of `royalty-ingest run` (`batch_size = 5000`, `database_url = "..."`,
//! `topics = ["a", "b"]`, `no_create_topics = true`). Precedence: flags, then environment
//! variables, then the file, then defaults. The file is applied by turning its values into
//! flags placed before the user's own, for the flags neither the command line nor the
//! environment set; an unknown key, or a value that is not a string, number, boolean or
//! list, stops the command naming the key.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Command};

/// The command line with the file's values in it, and which keys the file supplied.
#[derive(Debug, Default)]
pub struct Applied {
    /// The arguments to parse.
    pub args: Vec<OsString>,
    /// The file (when one was given).
    pub file: Option<PathBuf>,
    /// Long flag names whose value came from the file.
    pub from_file: Vec<String>,
}

/// Reads `--config FILE` (removed from the arguments) or `ROYALTY_CONFIG`, and inserts the
/// file's values after the subcommand. `cli` is the whole command; the keys are checked
/// against its `run` subcommand.
pub fn apply(cli: &Command, args: Vec<OsString>) -> anyhow::Result<Applied> {
    let (mut args, file) = take_config_flag(args)?;
    let file = file.or_else(|| std::env::var_os("ROYALTY_CONFIG").map(PathBuf::from));
    let Some(file) = file.filter(|f| !f.as_os_str().is_empty()) else {
        return Ok(Applied {
            args,
            ..Applied::default()
        });
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("the config file {} is not valid TOML", file.display()))?;
    let run = cli
        .find_subcommand("run")
        .context("the command has no run subcommand")?;
    let known: Vec<String> = run
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| l.replace('-', "_"))
        .filter(|k| k != "help" && k != "version")
        .collect();
    for key in table.keys() {
        anyhow::ensure!(
            known.contains(key),
            "unknown key `{key}` in the config file {}; the keys are the flags of `run` with `_` for `-`: {}",
            file.display(),
            known.join(", ")
        );
    }
    // The subcommand being run, and where its own arguments start.
    let (command, insert_at) = subcommand_of(cli, &args);
    let mut flags: Vec<OsString> = Vec::new();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            continue; // a key of `run` this command does not take
        };
        let given = args.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
        });
        let in_env = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some());
        if given || in_env {
            continue;
        }
        let takes_no_value = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        match value {
            toml::Value::Boolean(on) if takes_no_value => {
                if *on {
                    flags.push(format!("--{long}").into());
                }
            }
            toml::Value::String(s) => flags.push(format!("--{long}={s}").into()),
            toml::Value::Integer(n) => flags.push(format!("--{long}={n}").into()),
            toml::Value::Float(x) => flags.push(format!("--{long}={x}").into()),
            toml::Value::Boolean(b) => flags.push(format!("--{long}={b}").into()),
            toml::Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        toml::Value::Integer(n) => parts.push(n.to_string()),
                        _ => anyhow::bail!(
                            "`{key}` in the config file {}: a list may hold only strings and numbers",
                            file.display()
                        ),
                    }
                }
                if arg.get_value_delimiter().is_some() {
                    flags.push(format!("--{long}={}", parts.join(",")).into());
                } else {
                    for part in parts {
                        flags.push(format!("--{long}={part}").into());
                    }
                }
            }
            _ => anyhow::bail!(
                "`{key}` in the config file {}: expected a string, number, boolean or list",
                file.display()
            ),
        }
        from_file.push(long);
    }
    let tail = args.split_off(insert_at);
    args.extend(flags);
    args.extend(tail);
    Ok(Applied {
        args,
        file: Some(file),
        from_file,
    })
}

/// Removes `--config FILE` / `--config=FILE` from the arguments.
fn take_config_flag(args: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Option<PathBuf>)> {
    let mut out = Vec::with_capacity(args.len());
    let mut file = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--config") => {
                let value = iter.next().context("--config needs a file")?;
                file = Some(PathBuf::from(value));
            }
            Some(a) if a.starts_with("--config=") => {
                file = Some(PathBuf::from(&a["--config=".len()..]));
            }
            _ => out.push(arg),
        }
    }
    Ok((out, file))
}

/// The innermost subcommand named in `args` and the index right after its name.
fn subcommand_of<'a>(cli: &'a Command, args: &[OsString]) -> (&'a Command, usize) {
    let mut command = cli;
    let mut at = 1.min(args.len());
    let mut skip_value = false;
    for (i, arg) in args.iter().enumerate().skip(1) {
        let Some(name) = arg.to_str() else { break };
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if let Some(long) = name.strip_prefix("--") {
            // A flag before the subcommand (--log-format json): skip its value too.
            skip_value = !long.contains('=')
                && command.get_arguments().any(|a| {
                    a.get_long() == Some(long)
                        && matches!(a.get_action(), ArgAction::Set | ArgAction::Append)
                });
            continue;
        }
        if name.starts_with('-') {
            continue;
        }
        match command.find_subcommand(name) {
            Some(sub) => {
                command = sub;
                at = i + 1;
            }
            None => break,
        }
    }
    (command, at)
}
