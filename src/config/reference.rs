//! Where a secret comes from: `env:VAR`, `file:/path`, or `credential:NAME` (systemd
//! `LoadCredential=`, read from `$CREDENTIALS_DIRECTORY`). The value never sits in the
//! configuration itself, so a config file can be shared and logged.

use secrecy::SecretString;
use std::path::Path;

/// Reads the secret `reference` names.
pub fn resolve(reference: &str) -> Result<SecretString, String> {
    let (scheme, rest) = reference
        .split_once(':')
        .ok_or_else(|| format!("{reference:?} is not a secret reference (env:VAR, file:/path or credential:NAME)"))?;
    let read_file = |path: &Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let value = match scheme {
        "env" => std::env::var(rest).map_err(|_| format!("environment variable {rest} is not set"))?,
        "file" => read_file(Path::new(rest))?,
        "credential" => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                .ok_or("CREDENTIALS_DIRECTORY is not set (is LoadCredential= configured?)")?;
            read_file(&Path::new(&dir).join(rest))?
        }
        other => return Err(format!("unknown credentials scheme {other:?} (use env:, file: or credential:)")),
    };
    Ok(SecretString::from(value))
}
