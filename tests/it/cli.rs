//! The command line's conventions: an empty `WEARBRIDGE_*` variable means unset, for
//! every option, while a set one is still read and checked.

use std::process::{Command, Output};

use clap::Args;
use wearbridge::config::Config;

/// Every option's variable, as `wearbridge --help` lists them.
fn option_variables() -> Vec<String> {
    Config::augment_args(clap::Command::new("wearbridge"))
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect()
}

/// `wearbridge team create` on a fresh SQLite file, every option's variable (and the
/// log filter and one provider's credentials) set to `value`, then `extra`.
fn team_create(value: &str, extra: &[(&str, &str)]) -> Output {
    let dir =
        std::env::temp_dir().join(format!("wearbridge-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wearbridge"));
    cmd.args(["team", "create", "conventions"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for name in option_variables() {
        cmd.env(name, value);
    }
    cmd.env("WEARBRIDGE_LOG", value)
        .env("WEARBRIDGE_OURA_CLIENT_ID", value)
        .env("WEARBRIDGE_OURA_CLIENT_SECRET", value)
        .env(
            "WEARBRIDGE_DATABASE_URL",
            format!("sqlite://{}", dir.join("cli.db").display()),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("wearbridge runs");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn an_empty_variable_means_unset() {
    let names = option_variables();
    assert!(
        names.iter().any(|n| n == "WEARBRIDGE_ALLOW_PRIVATE_CIDRS"),
        "{names:?}"
    );
    let out = team_create("", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "every WEARBRIDGE_* variable empty: {stdout}\n{stderr}"
    );
    let key = stdout.lines().last().unwrap_or_default();
    assert!(
        key.starts_with("wb_"),
        "the API key on the last line: {stdout}"
    );
}

#[test]
fn a_set_variable_is_still_checked() {
    let out = team_create("", &[("WEARBRIDGE_ALLOW_PRIVATE_CIDRS", "not-a-cidr")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad CIDR is refused");
    assert!(
        stderr.contains("allow-private-cidrs") || stderr.contains("ALLOW_PRIVATE_CIDRS"),
        "the refusal names the option: {stderr}"
    );
}
