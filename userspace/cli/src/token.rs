//! `token`: the private key a game backend shares with tickgate, and connect tokens minted with
//! it (for tests, demos and operators; a backend mints its own, `docs/protocol.md`).

use std::{
    fs::{self, OpenOptions},
    io::Write as _,
    net::SocketAddr,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use tickgate::{
    session::token::{self, TokenParams},
    wire::crypto::{KEY_LEN, Key},
};

/// Arguments of `tickgate token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Write a new random private key to FILE (64 hex digits, mode 0600); never overwrites.
    NewKey {
        /// Where to write the key.
        file: PathBuf,
    },
    /// Mint a connect token for one player of one match.
    Mint(Box<MintArgs>),
}

/// Arguments of `tickgate token mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The private key shared with tickgate (`token new-key`).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// The game's protocol id (`run --protocol-id`).
    #[arg(long)]
    protocol_id: u64,
    /// The match the player joins.
    #[arg(long = "match", value_name = "ID")]
    match_id: u64,
    /// The player, as the game knows it.
    #[arg(long = "player", value_name = "ID")]
    player_id: u64,
    /// A tickgate server the token is valid for, IP:PORT (repeat for several, up to 32).
    #[arg(long = "server", value_name = "IP:PORT", required = true)]
    servers: Vec<SocketAddr>,
    /// Seconds from now until the token expires.
    #[arg(long, default_value_t = 30)]
    expire_secs: u64,
    /// Seconds of silence after which the session closes.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u32,
    /// Opaque user data for the game, as text (at most 256 bytes).
    #[arg(long, conflicts_with = "user_data_hex")]
    user_data: Option<String>,
    /// Opaque user data for the game, as hex (at most 256 bytes).
    #[arg(long)]
    user_data_hex: Option<String>,
    /// Write the 2048-byte token to FILE; without it, print it in base64 on stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn token(a: &TokenArgs) -> Result<()> {
    match &a.command {
        TokenCommand::NewKey { file } => new_key(file),
        TokenCommand::Mint(m) => mint(m),
    }
}

fn new_key(file: &Path) -> Result<()> {
    let key = Key::random().map_err(|e| anyhow::anyhow!("no random bytes for the key: {e}"))?;
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(file).with_context(|| {
            format!("creating {} (an existing key file is never overwritten)", file.display())
        })?;
    writeln!(f, "{}", hex(key.as_bytes())).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "wrote a new private key to {} (mode 0600): share it with the game's backend only",
        file.display()
    );
    Ok(())
}

/// Reads a key file: 64 hex digits, surrounding white space ignored.
pub fn read_key(file: &Path) -> Result<Key> {
    let text =
        fs::read_to_string(file).with_context(|| format!("reading the key file {}", file.display()))?;
    let bytes = unhex(text.trim()).with_context(|| format!("{}: not a key", file.display()))?;
    let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
        anyhow::anyhow!("{}: a key is {KEY_LEN} bytes (64 hex digits), not {}", file.display(), b.len())
    })?;
    Ok(Key::from_bytes(bytes))
}

fn mint(a: &MintArgs) -> Result<()> {
    let key = read_key(&a.key_file)?;
    let user_data = match (&a.user_data, &a.user_data_hex) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h).context("--user-data-hex")?,
        (None, None) => Vec::new(),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).context("the clock is before 1970")?.as_secs();
    let random = || Key::random().map_err(|e| anyhow::anyhow!("no random bytes for the session keys: {e}"));
    let params = TokenParams {
        protocol_id: a.protocol_id,
        create_ts: now,
        expire_ts: now.saturating_add(a.expire_secs.max(1)),
        timeout_s: a.timeout_secs,
        match_id: a.match_id,
        player_id: a.player_id,
        user_data,
        addresses: a.servers.clone(),
        c2s_key: random()?,
        s2c_key: random()?,
    };
    let bytes = token::mint_random(&key, &params)?;
    match &a.out {
        Some(path) => {
            fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote a {}-byte connect token to {}", bytes.len(), path.display());
        }
        None => println!("{}", base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .with_context(|| format!("not a hex digit pair at {i}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_key_files_say_why() {
        let dir = std::env::temp_dir().join(format!("tickgate-token-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        let _ = fs::remove_file(&file);
        new_key(&file).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let key = read_key(&file).unwrap();
        assert!(new_key(&file).is_err(), "an existing key is never overwritten");
        assert_eq!(read_key(&file).unwrap(), key);
        fs::write(&file, "abcd\n").unwrap();
        assert!(read_key(&file).unwrap_err().to_string().contains("32 bytes"));
        fs::write(&file, "zz".repeat(32)).unwrap();
        assert!(read_key(&file).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
