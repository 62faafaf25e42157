//! `reseal keygen`: development keys, never for production.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use time::{Duration, OffsetDateTime};

use super::CliResult;
use crate::app;
use crate::keys::{cert, raw_rsa};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create every missing development key a configuration refers to.
    Dev {
        #[arg(long, env = "RESEAL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// An RSA key pair: PATH (private, PKCS#8 PEM) and PATH with `.pub.pem` (public).
    Rsa {
        /// Where to write the private key (PKCS#8 PEM, mode 0600); the public
        /// key goes next to it with the extension `.pub.pem`.
        path: PathBuf,
        /// Modulus size: 2048, 3072 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// A random 256-bit AES key, base64, in PATH.
    Aes {
        /// Where to write the key (base64, mode 0600).
        path: PathBuf,
    },
    /// A self-signed X.509 certificate for an existing RSA private key.
    Cert {
        /// Private key PEM.
        #[arg(long)]
        key: PathBuf,
        /// Output certificate PEM.
        path: PathBuf,
        #[arg(long, default_value = "reseal-dev")]
        common_name: String,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
}

fn write_new(path: &std::path::Path, text: &str, private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    opts.open(path)?.write_all(text.as_bytes())
}

pub fn run(cmd: Command) -> CliResult {
    match cmd {
        Command::Dev { config } => {
            crate::telemetry::init_logging("text", "warn");
            let source = app::config_source(config.as_deref());
            let (file, base) = app::prepare(&source)?;
            if file.development.generate_missing_keys_in.is_none() {
                eprintln!("this configuration has no `development.generate_missing_keys_in`; nothing to do");
                return Ok(ExitCode::FAILURE);
            }
            println!("development keys are in place under {}", base.display());
        }
        Command::Rsa { path, bits } => {
            let (private, public) = raw_rsa::generate_pem(bits)?;
            let pub_path = path.with_extension("pub.pem");
            write_new(&path, &private, true)?;
            write_new(&pub_path, &public, false)?;
            println!("wrote {} and {}", path.display(), pub_path.display());
        }
        Command::Aes { path } => {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| "random source failed")?;
            use base64::Engine as _;
            let text = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD.encode(key.as_ref()) + "\n",
            );
            write_new(&path, &text, true)?;
            println!("wrote {}", path.display());
        }
        Command::Cert {
            key,
            path,
            common_name,
            days,
        } => {
            let pem = zeroize::Zeroizing::new(std::fs::read_to_string(&key)?);
            let now = OffsetDateTime::now_utc();
            let cert = cert::self_signed_rsa(
                &pem,
                &common_name,
                now - Duration::hours(1),
                now + Duration::days(days),
            )?;
            write_new(&path, &cert, false)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
