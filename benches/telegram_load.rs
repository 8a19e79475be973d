//! Issue 4's Telegram load benchmark: `pasar run` (ten market bots, the full ordering flow,
//! durable SQLite) against a minimal teloxide echo bot, both driven through the same fake Bot
//! API on 127.0.0.1. The load itself is `pasar_online::loadtest` (shared with
//! `pasar loadtest`); see BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench telegram_load                        # everything, default sizes
//! cargo bench --bench telegram_load -- --mode closed --shoppers 200 --journeys 10
//! cargo bench --bench telegram_load -- --mode open --rate 250 --seconds 30
//! # every shopper sends the same text (20 a bot x 100 messages), each text vs keranjang and echo
//! cargo bench --bench telegram_load -- --mode text --texts keranjang,kangkung,halo
//! ```

use clap::Parser;
use pasar_online::loadtest::{LoadArgs, echo_bot, run_load};

#[derive(Debug, Parser)]
#[command(about = "Telegram load benchmark: pasar run vs a teloxide echo bot on a fake Bot API")]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
    /// Internal: run the teloxide echo bot against this Bot API URL.
    #[arg(long, hide = true)]
    echo_bot: Option<String>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.echo_bot {
        return echo_bot(url);
    }
    if !args.bench {
        println!("telegram_load runs under `cargo bench --bench telegram_load` (or pass --bench)");
        return Ok(());
    }
    let me = std::env::current_exe()?.display().to_string();
    run_load(&args.load, std::path::Path::new(env!("CARGO_BIN_EXE_pasar")), &[me])
}
