//! Comparing kernel version strings, as distros sort their kernels.

use std::cmp::Ordering;

/// Compares kernel versions the way dpkg does (and rpm nearly so): runs
/// of digits as numbers, letters before other characters, and `~` before
/// anything, even the end (`6.12~rc1` is older than `6.12`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn order(c: Option<&u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
            Some(b'~') => -1,
            Some(c) => i32::from(*c) + 256,
        }
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        while a.first().is_some_and(|c| !c.is_ascii_digit())
            || b.first().is_some_and(|c| !c.is_ascii_digit())
        {
            let (x, y) = (order(a.first()), order(b.first()));
            if x != y {
                return x.cmp(&y);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        let skip = |s: &[u8]| s.iter().take_while(|&&c| c == b'0').count();
        a = a.get(skip(a)..).unwrap_or_default();
        b = b.get(skip(b)..).unwrap_or_default();
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let ord = na.cmp(&nb).then_with(|| a.get(..na).cmp(&b.get(..nb)));
        if ord != Ordering::Equal {
            return ord;
        }
        a = a.get(na..).unwrap_or_default();
        b = b.get(nb..).unwrap_or_default();
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("6.10.0", "6.9.12"), Ordering::Greater);
        assert_eq!(
            compare_versions("6.1.0-18-amd64", "6.1.0-9-amd64"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("6.1", "6.1.0"), Ordering::Less);
        assert_eq!(compare_versions("6.01", "6.1"), Ordering::Equal);
        assert_eq!(compare_versions("abc", "abd"), Ordering::Less);
    }

    #[test]
    fn tilde_sorts_before_the_end() {
        assert_eq!(compare_versions("6.12~rc1", "6.12"), Ordering::Less);
        assert_eq!(
            compare_versions("6.12.10+deb13-amd64", "6.12.9+deb13-amd64"),
            Ordering::Greater
        );
    }
}
