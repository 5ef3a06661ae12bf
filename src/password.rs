//! The password that locks the command-line editor, the rescue shell and
//! the repair actions: a crypt(3) SHA-512 hash (`$6$…`, as in /etc/shadow
//! and from `mkpasswd -m sha-512` or `vhdboot passwd`), checked with
//! RustCrypto's sha-crypt rather than code of our own.
#![forbid(unsafe_code)]

use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};
use std::fmt;

/// The most rounds a hash may ask for. The menu checks a password between
/// two frames: 5000 rounds (the default) take about a millisecond, and a
/// hundred thousand still well under a second on a slow PC under
/// emulation. crypt(3) allows up to 999,999,999, which would freeze the
/// menu for minutes.
pub const MAX_ROUNDS: u32 = 100_000;

/// The fewest rounds: crypt(3) raises fewer to 1000, sha-crypt refuses
/// them, so such a hash would never match.
pub const MIN_ROUNDS: u32 = 1_000;

/// The longest password the prompt takes, in characters.
pub const MAX_LENGTH: usize = 256;

/// A well-formed `$6$` hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

/// The `password` setting: a hash, or a value that is none, which keeps
/// everything it locks shut (a typo must not open the shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    Hash(PasswordHash),
    Unusable { reason: String },
}

impl PasswordHash {
    /// Checks `text` as a crypt(3) SHA-512 hash; the error says what is
    /// wrong with it.
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let Some(rest) = text.strip_prefix("$6$") else {
            return Err("it is not a SHA-512 crypt hash (those start with $6$)".into());
        };
        if let Some(rounds) = rest.strip_prefix("rounds=") {
            let digits = rounds.split('$').next().unwrap_or("");
            match digits.parse::<u32>() {
                Ok(n) if (MIN_ROUNDS..=MAX_ROUNDS).contains(&n) => {}
                _ => {
                    return Err(format!(
                        "its rounds={digits} is outside {MIN_ROUNDS} to {MAX_ROUNDS}"
                    ));
                }
            }
        }
        // One trial check proves the whole form: sha-crypt tells a wrong
        // password from a malformed hash.
        match ShaCrypt::SHA512.verify_password(b"", text) {
            Ok(()) | Err(sha_crypt::password_hash::Error::PasswordInvalid) => {
                Ok(PasswordHash(text.to_string()))
            }
            Err(_) => Err("it is not a well-formed $6$ hash ($6$[rounds=N$]salt$digest)".into()),
        }
    }

    /// Whether `typed` is the password, compared in constant time.
    pub fn matches(&self, typed: &str) -> bool {
        ShaCrypt::SHA512
            .verify_password(typed.as_bytes(), self.0.as_str())
            .is_ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    /// The salt and rounds only; the digest stays out of logs and test
    /// output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<&str> = self
            .0
            .split('$')
            .take(self.0.split('$').count() - 1)
            .collect();
        write!(f, "PasswordHash({}$…)", head.join("$"))
    }
}

impl Password {
    /// Reads the `password` setting's value.
    pub fn from_setting(text: &str) -> Password {
        match PasswordHash::parse(text) {
            Ok(hash) => Password::Hash(hash),
            Err(reason) => Password::Unusable { reason },
        }
    }

    /// Whether `typed` opens the lock. An unusable setting opens nothing.
    pub fn matches(&self, typed: &str) -> bool {
        match self {
            Password::Hash(hash) => hash.matches(typed),
            Password::Unusable { .. } => false,
        }
    }
}

/// Hashes `password` with `salt` (random bytes; twelve make the sixteen
/// salt characters crypt(3) uses) at the default 5000 rounds, in the form
/// the `password` setting takes.
pub fn hash(password: &str, salt: &[u8; 12]) -> Result<String, String> {
    ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), salt)
        .map(|h| h.as_str().to_string())
        .map_err(|e| format!("hashing the password failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From Drepper's specification of SHA-crypt, as glibc's crypt(3)
    /// writes it.
    const GLIBC: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    #[test]
    fn a_glibc_hash_matches_its_password_only() {
        let hash = PasswordHash::parse(GLIBC).unwrap();
        assert!(hash.matches("Hello world!"));
        assert!(!hash.matches("Hello world"));
        assert!(!hash.matches(""));
    }

    #[test]
    fn our_hash_round_trips_and_differs_by_salt() {
        let a = hash("secret", &[1; 12]).unwrap();
        let b = hash("secret", &[2; 12]).unwrap();
        assert!(a.starts_with("$6$"), "{a}");
        assert_ne!(a, b);
        for h in [a, b] {
            let parsed = PasswordHash::parse(&h).unwrap();
            assert!(parsed.matches("secret"));
            assert!(!parsed.matches("Secret"));
        }
    }

    #[test]
    fn malformed_and_expensive_hashes_are_refused_with_the_reason() {
        let cases = [
            ("secret", "start with $6$"),
            ("$1$abc$def", "start with $6$"),
            ("$6$saltonly", "well-formed"),
            ("$6$salt$not*base64", "well-formed"),
            ("$6$rounds=999999999$salt$abc", "outside 1000 to 100000"),
            ("$6$rounds=10$salt$abc", "outside"),
            ("$6$rounds=x$salt$abc", "outside"),
        ];
        for (text, why) in cases {
            let err = PasswordHash::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn an_unusable_setting_opens_nothing() {
        let p = Password::from_setting("$6$oops");
        assert!(matches!(p, Password::Unusable { .. }));
        assert!(!p.matches(""));
        assert!(!p.matches("$6$oops"));
    }

    #[test]
    fn debug_output_leaves_the_digest_out() {
        let shown = format!("{:?}", PasswordHash::parse(GLIBC).unwrap());
        assert_eq!(shown, "PasswordHash($6$saltstring$…)");
    }
}
