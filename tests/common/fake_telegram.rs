//! The fake Telegram Bot API (in the library, [`pasar_online::fakes::telegram`], as `pasar
//! loadtest` uses it too), and how a test starts `pasar run` against it.

pub use pasar_online::fakes::telegram::*;

/// `pasar run` as a child process (killed on drop).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starting the test build's `pasar run` against a [`FakeTelegram`].
pub trait RunPasar {
    /// Starts `pasar run` on `dir` against this fake: the Blimbing and Dinoyo bots with these
    /// tokens, `admin` as Blimbing's admin from the config, and `extra` config lines (limits,
    /// more admins) in the `[telegram]` part.
    fn run_pasar(&self, dir: &std::path::Path, tokens: (&str, &str), admin: i64, extra: &str) -> Running;
}

impl RunPasar for FakeTelegram {
    fn run_pasar(&self, dir: &std::path::Path, tokens: (&str, &str), admin: i64, extra: &str) -> Running {
        use std::process::{Command, Stdio};
        let config = format!(
            "[telegram]\napi_url = \"{}\"\npoll_timeout_secs = 1\n{extra}\n[[admins]]\nchannel = \"telegram\"\nuser = \"{admin}\"\nmarkets = [\"blimbing\"]\n",
            self.url
        );
        let path = dir.join("config.toml");
        std::fs::write(&path, config).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_pasar"))
            .arg("--config")
            .arg(&path)
            .args(["run", "--db"])
            .arg(dir.join("pasar.db"))
            .env("PASAR_BLIMBING_TELEGRAM_TOKEN", tokens.0)
            .env("PASAR_DINOYO_TELEGRAM_TOKEN", tokens.1)
            .env_remove("PASAR_DB")
            .env("PASAR_LOG", std::env::var("PASAR_TEST_LOG").unwrap_or_else(|_| "off".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("PASAR_TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("pasar run");
        Running(child)
    }
}
