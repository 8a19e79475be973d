//! A secret from the environment (a bot token, an app secret, an API key): its `Debug` never
//! shows it, so a plan or a config printed with `{:?}` (in a log line, an error, a panic)
//! leaks nothing. The value is read only through [`Secret::expose`], where it is used.

/// A secret value; `Debug` prints `Secret(***)`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it (a header, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The variable `name` from the environment (blank counts as unset); else the variable
    /// of its old name, with a warning to rename it.
    pub fn from_env(name: &str, old_name: Option<&str>) -> Option<Secret> {
        let read = |n: &str| std::env::var(n).ok().filter(|s| !s.trim().is_empty()).map(Secret);
        read(name).or_else(|| {
            let old = old_name?;
            let value = read(old)?;
            tracing::warn!("{old} is the old name of {name}: rename it (the old name will stop working)");
            Some(value)
        })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(empty)" } else { "Secret(***)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(***))");
        assert_eq!(s.expose(), "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ");
    }
}
