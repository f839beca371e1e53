//! The version this program reports, everywhere it reports one (`--version`,
//! the API, the cloud's status, the User-Agent): the one `candor release`
//! stamped into the binary when it signed it, or the crate version of a
//! build nobody released.
//!
//! Why a stamp and not only the crate version: a release's version is the
//! name its signed metadata gives it (`candor-<version>-<arch>`), and the
//! binary must say the same thing, or the update that was installed and
//! the version the System page and the fleet show could disagree. Stamping
//! at release time makes the two one fact. The stamp lives in a fixed-size
//! slot of the binary's read-only data, found by its marker; nothing is
//! executed to read or write it (docs/design/updates.md).

use std::sync::OnceLock;

/// Marker bytes that begin the slot. Unlikely in any other data, and found
/// exactly once in a Candor binary (the stamper refuses otherwise).
const MARKER_LEN: usize = 24;
/// Room for a semver version (with pre-release and build metadata).
const SLOT_LEN: usize = 40;
const STAMP_LEN: usize = MARKER_LEN + SLOT_LEN;

const fn blank_stamp() -> [u8; STAMP_LEN] {
    let marker = *b"\xfeCANDOR\x01RELEASE\x01VERSION\xfe";
    let mut s = [0u8; STAMP_LEN];
    let mut i = 0;
    while i < MARKER_LEN {
        s[i] = marker[i];
        i += 1;
    }
    s
}

/// The slot. `#[used]` keeps it in the binary; reads go through
/// `black_box` so the compiler can't fold the unstamped (empty) slot into
/// the code: the bytes are read from the mapped file at run time.
#[used]
static STAMP: [u8; STAMP_LEN] = blank_stamp();

/// The marker, as the slot itself holds it: a slice of the static, so the
/// search needle is not a second copy of the marker in the binary.
fn marker() -> &'static [u8] {
    &std::hint::black_box(&STAMP)[..MARKER_LEN]
}

/// A version string the slot may hold: semver's characters only, so a
/// stamp can't carry anything a log line or a path would mind.
fn valid(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= SLOT_LEN
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

fn read_slot(slot: &[u8]) -> Option<String> {
    let end = slot.iter().position(|&b| b == 0).unwrap_or(slot.len());
    let v = std::str::from_utf8(&slot[..end]).ok()?;
    valid(v).then(|| v.to_owned())
}

/// This program's version: the release stamp, else the crate version.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let stamp = std::hint::black_box(&STAMP);
        read_slot(&stamp[MARKER_LEN..]).unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned())
    })
}

/// Why a binary could not be stamped.
#[derive(Debug, PartialEq, Eq)]
pub enum StampError {
    /// Not a Candor binary (no slot), or one this version can't stamp.
    NoSlot,
    /// The marker occurs more than once: which one is the slot is unknown.
    Ambiguous(usize),
    /// Not a version the slot can hold.
    BadVersion,
}

impl std::fmt::Display for StampError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StampError::NoSlot => write!(f, "not a Candor binary (it has no version slot)"),
            StampError::Ambiguous(n) => write!(
                f,
                "the version slot's marker occurs {n} times; refusing to guess which is the slot"
            ),
            StampError::BadVersion => write!(
                f,
                "a version is up to {SLOT_LEN} letters, digits, '.', '-' and '+'"
            ),
        }
    }
}

impl std::error::Error for StampError {}

fn slot_at(binary: &[u8]) -> Result<usize, StampError> {
    let m = marker();
    let mut found = binary
        .windows(MARKER_LEN)
        .enumerate()
        .filter(|(_, w)| *w == m)
        .map(|(i, _)| i);
    let first = found.next().ok_or(StampError::NoSlot)?;
    let more = found.count();
    if more > 0 {
        return Err(StampError::Ambiguous(more + 1));
    }
    if first + STAMP_LEN > binary.len() {
        return Err(StampError::NoSlot);
    }
    Ok(first + MARKER_LEN)
}

/// Writes `version` into the binary's slot (what `candor release` does
/// before signing).
pub fn stamp(binary: &mut [u8], version: &str) -> Result<(), StampError> {
    if !valid(version) {
        return Err(StampError::BadVersion);
    }
    let at = slot_at(binary)?;
    let slot = &mut binary[at..at + SLOT_LEN];
    slot.fill(0);
    slot[..version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

/// The version stamped into another binary, without running it: `Ok(None)`
/// for a Candor binary nobody released.
pub fn stamped(binary: &[u8]) -> Result<Option<String>, StampError> {
    let at = slot_at(binary)?;
    Ok(read_slot(&binary[at..at + SLOT_LEN]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_binary() -> Vec<u8> {
        let mut b = vec![0x90u8; 1000];
        b.extend_from_slice(&blank_stamp());
        b.extend_from_slice(&[0x90u8; 1000]);
        b
    }

    #[test]
    fn a_stamp_is_written_read_back_and_checked() {
        let mut b = fake_binary();
        assert_eq!(stamped(&b), Ok(None));
        stamp(&mut b, "9.3.0").unwrap();
        assert_eq!(stamped(&b), Ok(Some("9.3.0".into())));
        // A shorter version over a longer one leaves no tail.
        stamp(&mut b, "1.0.0-rc.1+build.7").unwrap();
        stamp(&mut b, "2.0.0").unwrap();
        assert_eq!(stamped(&b), Ok(Some("2.0.0".into())));
        assert_eq!(b.len(), 2000 + STAMP_LEN);
        for bad in ["", "1.0.0\n", "1.0.0/../x", &"9".repeat(SLOT_LEN + 1)] {
            assert_eq!(stamp(&mut b, bad), Err(StampError::BadVersion), "{bad:?}");
        }
    }

    #[test]
    fn no_slot_or_two_slots_are_refused() {
        let mut none = vec![0u8; 4096];
        assert_eq!(stamp(&mut none, "1.0.0"), Err(StampError::NoSlot));
        let mut two = fake_binary();
        two.extend_from_slice(&blank_stamp());
        assert_eq!(stamp(&mut two, "1.0.0"), Err(StampError::Ambiguous(2)));
        // A marker cut off by the end of the file is not a slot.
        let mut cut = vec![0u8; 10];
        cut.extend_from_slice(&blank_stamp()[..MARKER_LEN + 3]);
        assert_eq!(stamped(&cut), Err(StampError::NoSlot));
    }

    #[test]
    fn an_unstamped_build_reports_its_crate_version() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
    }
}
