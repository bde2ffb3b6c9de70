//! `run --config FILE`: a TOML file whose keys are `run`'s long flags (`tick-hz` or `tick_hz`),
//! turned into flags before parsing. A flag given on the command line wins over the file.
//!
//! ```toml
//! interface = "eth0"
//! port = [7777, 7778]
//! mode = "native"
//! busy-poll = true
//! ```

use std::{ffi::OsString, path::Path};

use clap::{Arg, CommandFactory as _};

use super::Args;

/// Why a config file was refused. The message names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path, line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    path: String,
    line: Option<usize>,
    message: String,
}

/// Expands `run --config FILE` in `argv` into the file's flags; other command lines are
/// returned unchanged.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfigError> {
    let strings: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let Some(run_at) = strings.iter().position(|a| a == "run") else { return Ok(argv) };
    let user = &strings[run_at + 1..];
    let path = user.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=")
            .map(str::to_owned)
            .or_else(|| (a == "--config").then(|| user.get(i + 1).cloned()).flatten())
    });
    let Some(path) = path else { return Ok(argv) };
    let flags = flags_from_file(Path::new(&path), user)?;
    let mut out: Vec<OsString> = argv[..=run_at].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(argv[run_at + 1..].iter().cloned());
    Ok(out)
}

fn flags_from_file(path: &Path, user: &[String]) -> Result<Vec<String>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: shown.clone(),
        line: None,
        message: format!("cannot read it: {e}"),
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
        path: shown.clone(),
        line: e.span().map(|s| line_of(&text, s.start)),
        message: e.message().to_owned(),
    })?;
    let mut command = Args::command();
    let run = command.find_subcommand_mut("run").expect("the run subcommand exists");
    let mut flags = Vec::new();
    for (key, value) in &table {
        let line = key_line(&text, key);
        let err = |message: String| ConfigError { path: shown.clone(), line, message };
        let long = key.replace('_', "-");
        let Some(arg) = run.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            let known: Vec<&str> =
                run.get_arguments().filter_map(Arg::get_long).filter(|l| *l != "config").collect();
            return Err(err(format!("unknown key `{key}`; the keys are run's flags: {}", known.join(", "))));
        };
        if given_on_command_line(arg, user) {
            continue;
        }
        let text_value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => Err(err(format!("`{key}`: list items must be numbers or strings"))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(err(format!("`{key}`: expected a string, number, boolean or list"))),
        };
        let takes_value = arg.get_action().takes_values();
        if !takes_value {
            match value {
                toml::Value::Boolean(true) => flags.push(format!("--{long}")),
                toml::Value::Boolean(false) => {}
                _ => return Err(err(format!("`{key}`: expected true or false"))),
            }
            continue;
        }
        // Check the value with the flag's own parser, so the error points at this line.
        let mut probe = vec!["run".to_owned(), "probe0".to_owned()];
        if long != "port" {
            probe.extend(["--port".to_owned(), "1".to_owned()]);
        }
        probe.push(format!("--{long}={text_value}"));
        if let Err(e) = run.clone().try_get_matches_from(probe) {
            let first =
                e.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            return Err(err(format!("`{key}`: {first}")));
        }
        flags.push(format!("--{long}={text_value}"));
    }
    Ok(flags)
}

fn given_on_command_line(arg: &Arg, user: &[String]) -> bool {
    let long = arg.get_long().map(|l| format!("--{l}"));
    let short = arg.get_short().map(|c| format!("-{c}"));
    user.iter().any(|a| {
        long.as_ref().is_some_and(|l| a == l || a.starts_with(&format!("{l}=")))
            || short.as_ref().is_some_and(|s| a.starts_with(s.as_str()))
    })
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// 1-based line where top-level `key` is assigned.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile_path::Temp {
        tempfile_path::Temp::new(text)
    }

    /// A file under the test's temp dir, removed on drop.
    mod tempfile_path {
        pub struct Temp(pub std::path::PathBuf);
        impl Temp {
            pub fn new(text: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "tickgate-config-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
        }
        impl Drop for Temp {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn expanded(text: &str, user: &[&str]) -> Result<Vec<String>, String> {
        let f = file(text);
        let mut args = vec!["tickgate", "run"];
        let path = f.0.to_string_lossy().into_owned();
        args.extend(user);
        args.extend(["--config", &path]);
        expand(argv(&args))
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_become_flags_and_the_command_line_wins() {
        let out = expanded(
            "interface = \"eth0\"\nport = [7777, 7778]\ntick_hz = 120\nbusy-poll = true\nmode = \"skb\"\n",
            &["--mode", "native"],
        )
        .unwrap();
        assert!(out.contains(&"--interface=eth0".to_owned()), "{out:?}");
        assert!(out.contains(&"--port=7777,7778".to_owned()));
        assert!(out.contains(&"--tick-hz=120".to_owned()));
        assert!(out.contains(&"--busy-poll".to_owned()));
        assert!(!out.iter().any(|a| a == "--mode=skb"), "the command line's --mode wins: {out:?}");
        // The expanded line parses as a whole.
        <Args as clap::Parser>::try_parse_from(&out).unwrap();
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let err = expanded("port = 7777\n\ntick-hz = \"fast\"\n", &[]).unwrap_err();
        assert!(err.contains(" line 3: `tick-hz`"), "{err}");
        let err = expanded("port = 7777\nwarp = 9\n", &[]).unwrap_err();
        assert!(err.contains(" line 2: unknown key `warp`") && err.contains("tick-hz"), "{err}");
        let err = expanded("port = [7777,\n", &[]).unwrap_err();
        assert!(err.contains(" line "), "{err}");
        let err = expanded("busy-poll = 3\n", &[]).unwrap_err();
        assert!(err.contains(" line 1: `busy-poll`: expected true or false"), "{err}");
        let err = expanded("mode = \"turbo\"\n", &[]).unwrap_err();
        assert!(err.contains(" line 1: `mode`"), "{err}");
    }

    #[test]
    fn the_documented_example_is_a_valid_config() {
        let out = expanded(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tickgate.example.toml")),
            &[],
        )
        .unwrap();
        let args = <Args as clap::Parser>::try_parse_from(&out).unwrap();
        let text = format!("{args:?}");
        assert!(text.contains("7778") && text.contains("rate_limit: Some"), "{text}");
        assert!(text.contains("key_file: Some") && text.contains("insecure_v1: false"), "{text}");
    }

    #[test]
    fn command_lines_without_a_config_are_untouched() {
        let args = argv(&["tickgate", "status", "--json"]);
        assert_eq!(expand(args.clone()).unwrap(), args);
    }
}
