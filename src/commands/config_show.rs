//! `royalty-ingest config show`: the effective configuration of `run` — every setting with
//! its value and where it came from (flag, environment variable, config file, default) —
//! as TOML that can serve as a config file. Passwords and secrets are replaced by `***`.

use clap::{ArgMatches, Command};

use crate::config::file::Applied;
use crate::db::redact;

/// The effective configuration as commented TOML.
pub fn render(command: &Command, matches: &ArgMatches, applied: &Applied) -> String {
    let mut out = String::from(
        "# effective configuration of `royalty-ingest run`\n\
         # precedence: flags, environment variables, config file, defaults\n",
    );
    if let Some(file) = &applied.file {
        out.push_str(&format!("# config file: {}\n", file.display()));
    }
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let id = arg.get_id().as_str();
        let Some(values) = matches.get_raw(id) else {
            out.push_str(&format!("# {} is not set\n", long.replace('-', "_")));
            continue;
        };
        let values: Vec<String> = values
            .map(|v| redact_value(long, &v.to_string_lossy()))
            .collect();
        let source = if applied.from_file.iter().any(|f| f == long) {
            "config file".to_string()
        } else {
            match matches.value_source(id) {
                Some(clap::parser::ValueSource::CommandLine) => "flag".to_string(),
                Some(clap::parser::ValueSource::EnvVariable) => format!(
                    "environment {}",
                    arg.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                _ => "default".to_string(),
            }
        };
        let value = if arg.get_value_delimiter().is_some() || values.len() > 1 {
            format!(
                "[{}]",
                values
                    .iter()
                    .map(|v| toml_value(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            toml_value(values.first().map(String::as_str).unwrap_or(""))
        };
        out.push_str(&format!(
            "{} = {value}  # {source}\n",
            long.replace('-', "_")
        ));
    }
    out
}

/// A value with its secret parts replaced: passwords in URLs, and pass-through
/// properties that name a password, secret or credential.
fn redact_value(long: &str, value: &str) -> String {
    match long {
        "database-url" | "registry-url" => redact(value),
        "kafka-property" => match value.split_once('=') {
            Some((key, _))
                if ["password", "secret", "jaas", "token", "credential"]
                    .iter()
                    .any(|word| key.to_lowercase().contains(word)) =>
            {
                format!("{key}=***")
            }
            _ => value.to_string(),
        },
        _ => value.to_string(),
    }
}

/// A number or boolean as itself, anything else as a TOML string.
fn toml_value(raw: &str) -> String {
    if raw.parse::<i64>().is_ok() || raw == "true" || raw == "false" {
        raw.to_string()
    } else {
        toml::Value::String(raw.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_value("database-url", "postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_value("kafka-property", "sasl.password=hunter2"),
            "sasl.password=***"
        );
        assert_eq!(
            redact_value("kafka-property", "security.protocol=SASL_SSL"),
            "security.protocol=SASL_SSL"
        );
        assert_eq!(toml_value("5000"), "5000");
        let quoted: toml::Table =
            toml::from_str(&format!("x = {}", toml_value("a\"b"))).expect("valid TOML");
        assert_eq!(quoted["x"].as_str(), Some("a\"b"));
    }
}
