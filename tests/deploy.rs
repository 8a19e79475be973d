//! What `deploy/` ships must work as documented: the systemd units (the service, and the
//! daily backup and purge timers) and the list of secrets. systemd cannot run in a test, so
//! these pin the settings that make it work.

use std::path::Path;

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(name)).expect(name)
}

/// The value of `Key=` in a unit (the last one).
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines().rev().find_map(|l| l.strip_prefix(&format!("{key}=")))
}

#[test]
fn every_secret_the_code_reads_is_listed_in_the_env_example() {
    let seed = pasar_online::domain::catalog::SeedData::builtin().expect("seed data");
    let markets: Vec<String> = seed.markets.iter().map(|m| m.slug.clone()).collect();
    let example = read("pasar.env.example");
    let listed: Vec<&str> = example.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k.trim())).collect();
    for name in pasar_online::runtime::secret_variables(&markets) {
        assert!(listed.contains(&name.as_str()), "{name} is missing from deploy/pasar.env.example");
    }
    assert!(!listed.iter().any(|n| n.starts_with("WHATSAPP_")), "the old WhatsApp names");
}

#[test]
fn the_units_can_read_their_config_share_their_state_and_stop_in_time() {
    let service = read("pasar.service");
    // A dynamic user reads /etc/pasar only if systemd keeps it readable; the secrets come
    // through EnvironmentFile=, read by systemd before it drops privileges.
    assert_eq!(setting(&service, "DynamicUser"), Some("yes"));
    assert_eq!(setting(&service, "ConfigurationDirectory"), Some("pasar"));
    assert_eq!(setting(&service, "ConfigurationDirectoryMode"), Some("0755"));
    assert_eq!(setting(&service, "EnvironmentFile"), Some("/etc/pasar/pasar.env"));
    assert!(!service.contains("install -d -m 0750 /etc/pasar"), "a 0750 root folder the service cannot read");
    // The process's own deadline (and its engine's last pass) end before systemd kills it.
    let stop: u64 = setting(&service, "TimeoutStopSec").and_then(|s| s.parse().ok()).expect("TimeoutStopSec");
    assert!(pasar_online::runtime::SHUTDOWN_DEADLINE.as_secs() + 5 < stop, "{stop}");
    // The timers' jobs run as the same user on the same state folder.
    for (job, command) in [
        ("pasar-backup", " backup --db /var/lib/pasar/pasar.db"),
        ("pasar-purge", " purge --db /var/lib/pasar/pasar.db"),
    ] {
        let unit = read(&format!("{job}.service"));
        for key in ["DynamicUser", "User", "StateDirectory", "ConfigurationDirectory"] {
            assert_eq!(setting(&unit, key), setting(&service, key), "{job}: {key}");
        }
        assert!(setting(&unit, "ExecStart").is_some_and(|e| e.ends_with(command)), "{job}");
        let timer = read(&format!("{job}.timer"));
        assert!(setting(&timer, "OnCalendar").is_some(), "{job}.timer");
        assert_eq!(setting(&timer, "WantedBy"), Some("timers.target"));
    }
}
