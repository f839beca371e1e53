//! Brute-force protection for every secret a client may guess: passwords,
//! TOTP codes, pairing codes.
//!
//! Two rules make it hold under parallel requests:
//! - An attempt is **reserved before** the secret is checked ([`Limiter::reserve`]):
//!   the counter moves first, so 30 requests sent at once reach the check at
//!   most [`MAX_FAILURES`] times, not 30. A request that turns out right, or
//!   never reached the check, gives its reservation back.
//! - Password hashing runs behind a small gate ([`HashGate`]): a few argon2
//!   runs at a time (19 MiB each), a short queue, and beyond that an
//!   immediate "busy" answer that costs no hashing at all.
//!
//! Lockout denial of service: counting failures per user name lets any
//! stranger keep `admin` locked out. Following OWASP's "device cookie"
//! pattern, a browser that has signed in as a user before carries a signed
//! cookie naming that user ([`DeviceKey`]). Its attempts count against that
//! device alone, never against the user-wide or address counters, so
//! strangers' failures cannot lock it out (and its own failures lock only it).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW_SECS: u64 = 15 * 60;
pub const LOCKOUT_SECS: u64 = 15 * 60;
/// At most this many keys are tracked; stale ones are dropped first, then
/// (under a spray of fresh names) the oldest.
const MAX_KEYS: usize = 20_000;

#[derive(Default)]
struct Failures {
    count: u32,
    since: Option<Instant>,
    locked_until: Option<Instant>,
    /// Attempts refused during the current lockout.
    refused: u64,
}

impl Failures {
    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|&u| u > now)
    }
    fn stale(&self, now: Instant) -> bool {
        self.locked(now).is_none()
            && self
                .since
                .is_none_or(|s| now.duration_since(s) > Duration::from_secs(WINDOW_SECS))
    }
}

/// Who is guessing: the keys an attempt counts against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client<'a> {
    /// Unknown browser or script: counted per name and per address.
    Untrusted { name: &'a str, ip: IpAddr },
    /// As `Untrusted`, through the cloud's relay (remote access): counted
    /// apart, so guesses from the internet cannot lock a name out on the
    /// local network (and the address is the one the cloud reports).
    Remote { name: &'a str, ip: IpAddr },
    /// A browser with a valid device cookie for this name: counted per device.
    Device { id: &'a str },
    /// One counter of its own (sign-ups per address, a signed-in account's
    /// password or code checks): shares nothing with sign-in counters.
    Key(&'a str),
}

/// The address key: IPv4 as is, IPv6 by its /64 (one host usually holds a
/// whole /64, so single addresses would give it endless fresh keys).
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V6(v) => {
            let s = v.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => v4.to_string(),
    }
}

impl Client<'_> {
    fn keys(&self) -> Vec<String> {
        match self {
            Client::Untrusted { name, ip } => {
                vec![format!("user:{name}"), format!("ip:{}", address_key(*ip))]
            }
            // "ip:" first: evicted and given back like any address key.
            Client::Remote { name, ip } => vec![
                format!("remote-user:{name}"),
                format!("ip:remote:{}", address_key(*ip)),
            ],
            Client::Device { id } => vec![format!("device:{id}")],
            Client::Key(k) => vec![format!("key:{k}")],
        }
    }
}

/// A refusal: the client is locked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// Seconds until the lockout ends.
    pub secs: u64,
    /// True for the first refusal of this lockout: the one to audit. Later
    /// refusals are only counted ([`Limiter::take_ended`]), so a flood of
    /// attempts while locked writes nothing to disk.
    pub first: bool,
}

/// A lockout that is over, with the attempts it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub key: String,
    pub refused: u64,
}

#[derive(Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, Failures>>,
    ended: Mutex<Vec<Ended>>,
}

/// A reserved attempt. It already counts as a failure; [`Attempt::succeeded`]
/// or [`Attempt::refund`] take it back. Dropping it keeps it counted.
#[must_use]
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    keys: Vec<String>,
    /// True when this attempt used up the last one before a lockout.
    pub locks: bool,
}

impl Limiter {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves one attempt for `client`, or refuses because one of its keys
    /// is locked out.
    pub fn reserve(&self, client: &Client<'_>) -> Result<Attempt<'_>, Locked> {
        let now = Instant::now();
        let keys = client.keys();
        let mut map = self.map();
        self.sweep(&mut map, now);
        // Refuse if any key is locked; count the refusal on each locked key.
        let mut refusal: Option<Locked> = None;
        for k in &keys {
            if let Some(f) = map.get_mut(k)
                && let Some(until) = f.locked(now)
            {
                f.refused += 1;
                let secs = (until - now).as_secs() + 1;
                let first = f.refused == 1;
                refusal = Some(match refusal {
                    Some(r) => Locked {
                        secs: r.secs.max(secs),
                        first: r.first || first,
                    },
                    None => Locked { secs, first },
                });
            }
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        let mut locks = false;
        for k in &keys {
            let f = map.entry(k.clone()).or_default();
            if f.stale(now) {
                *f = Failures::default();
            }
            f.since.get_or_insert(now);
            f.count += 1;
            if f.count >= MAX_FAILURES {
                f.locked_until = Some(now + Duration::from_secs(LOCKOUT_SECS));
                locks = true;
            }
        }
        Ok(Attempt {
            limiter: self,
            keys,
            locks,
        })
    }

    /// Seconds until `client` may try again, without reserving anything.
    pub fn locked(&self, client: &Client<'_>) -> Option<u64> {
        let now = Instant::now();
        let map = self.map();
        client
            .keys()
            .iter()
            .filter_map(|k| map.get(k)?.locked(now).map(|u| (u - now).as_secs() + 1))
            .max()
    }

    /// Lockouts that have ended since the last call, with how many attempts
    /// each refused: one audit line per lockout, however long the flood.
    pub fn take_ended(&self) -> Vec<Ended> {
        let mut map = self.map();
        self.sweep(&mut map, Instant::now());
        drop(map);
        std::mem::take(&mut *self.ended.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Forgets stale keys, recording lockouts that ended with refusals.
    fn sweep(&self, map: &mut HashMap<String, Failures>, now: Instant) {
        let mut ended = Vec::new();
        for (k, f) in map.iter_mut() {
            if f.locked_until.is_some_and(|u| u <= now) {
                if f.refused > 0 {
                    ended.push(Ended {
                        key: k.clone(),
                        refused: f.refused,
                    });
                }
                *f = Failures::default();
            }
        }
        if map.len() > MAX_KEYS {
            // Keys that count nothing (given back) or are past their window.
            map.retain(|_, f| f.count > 0 && !f.stale(now));
        }
        if map.len() > MAX_KEYS {
            // Still full: forget address keys first, oldest first. A name's
            // or device's failures are never forgotten early, so filling the
            // table cannot reset the count of a name being guessed at; each
            // such key cost the attacker a real (hashed) attempt, so their
            // number is bounded by the hashing rate over the window.
            let mut addresses: Vec<(Instant, String)> = map
                .iter()
                .filter(|(k, f)| k.starts_with("ip:") && f.locked(now).is_none())
                .map(|(k, f)| (f.since.unwrap_or(now), k.clone()))
                .collect();
            addresses.sort();
            let excess = map.len() - MAX_KEYS;
            for (_, k) in addresses.into_iter().take(excess) {
                map.remove(&k);
            }
        }
        if !ended.is_empty() {
            let mut e = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded: a flood of lockouts across addresses must not grow this.
            if e.len() < 1000 {
                e.extend(ended);
            }
        }
    }

    fn give_back(&self, keys: &[String], clear: bool) {
        let mut map = self.map();
        for k in keys {
            let Some(f) = map.get_mut(k) else { continue };
            if clear && !k.starts_with("ip:") {
                *f = Failures::default();
            } else {
                f.count = f.count.saturating_sub(1);
                if f.count < MAX_FAILURES && f.refused == 0 {
                    f.locked_until = None;
                }
            }
            // A key that counts nothing takes no room.
            if f.count == 0 && f.locked_until.is_none() {
                map.remove(k);
            }
        }
    }
}

impl Attempt<'_> {
    /// The secret was right: the name's and device's failures are forgotten;
    /// the address keeps its other failures (this one is given back).
    pub fn succeeded(self) {
        self.limiter.give_back(&self.keys, true);
    }
    /// The secret was never judged (a second factor is still needed, the
    /// server was busy): the attempt does not count.
    pub fn refund(self) {
        self.limiter.give_back(&self.keys, false);
    }
    /// The secret was wrong: it stays counted.
    pub fn failed(self) {}
}

/// Bounds concurrent password hashing: argon2id takes 19 MiB and tens of
/// milliseconds per run, so unbounded parallel logins are a memory and CPU
/// weapon. A few run at once; a few more wait briefly; the rest are told
/// to come back (`None`) without any hashing.
pub struct HashGate {
    slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl Default for HashGate {
    fn default() -> HashGate {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HashGate::new(cores.clamp(1, 8), 16, Duration::from_secs(3))
    }
}

impl HashGate {
    pub fn new(concurrent: usize, max_waiting: usize, max_wait: Duration) -> HashGate {
        HashGate {
            slots: tokio::sync::Semaphore::new(concurrent),
            waiting: 0.into(),
            max_waiting,
            max_wait,
        }
    }

    /// A slot to hash in, or `None`: busy, answer 503 with `Retry-After`.
    pub async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Ok(p) = self.slots.try_acquire() {
            return Some(p);
        }
        if self.waiting.fetch_add(1, SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, SeqCst);
            return None;
        }
        let r = tokio::time::timeout(self.max_wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, SeqCst);
        r.ok()?.ok()
    }
}

/// Signs and checks device cookies (OWASP "device cookie"): `<nonce>.<mac>`,
/// where the MAC covers the user name and the nonce under a key that never
/// leaves the server. The nonce identifies the device in the [`Limiter`].
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    pub fn new(key: [u8; 32]) -> DeviceKey {
        DeviceKey(key)
    }

    pub fn random() -> DeviceKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DeviceKey(k)
    }

    fn mac(&self, name: &str, nonce: &str) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        m.update(name.as_bytes());
        m.update(b"\0");
        m.update(nonce.as_bytes());
        hex(&m.finalize().into_bytes()[..16])
    }

    /// A new device cookie value for `name`.
    pub fn issue(&self, name: &str) -> String {
        let mut n = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut n);
        let nonce = hex(&n);
        let mac = self.mac(name, &nonce);
        format!("{nonce}.{mac}")
    }

    /// The device id if `value` is a cookie this server issued for `name`.
    pub fn check<'v>(&self, name: &str, value: &'v str) -> Option<&'v str> {
        let (nonce, mac) = value.split_once('.')?;
        (nonce.len() == 24 && crate::same(mac, &self.mac(name, nonce))).then_some(nonce)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn remote_guesses_do_not_lock_the_name_out_locally() {
        let l = Limiter::default();
        let remote = Client::Remote {
            name: "admin",
            ip: ip(1),
        };
        for _ in 0..MAX_FAILURES {
            l.reserve(&remote).unwrap().failed();
        }
        assert!(l.reserve(&remote).is_err(), "locked through the relay");
        let local = Client::Untrusted {
            name: "admin",
            ip: ip(1),
        };
        assert!(l.reserve(&local).is_ok(), "not on the LAN");
    }

    #[test]
    fn parallel_reservations_stop_at_the_limit() {
        let l = Limiter::default();
        let c = Client::Untrusted {
            name: "admin",
            ip: ip(1),
        };
        // Reserve 30 at once, none resolved yet: as parallel requests would.
        let held: Vec<_> = (0..30).map(|_| l.reserve(&c)).collect();
        assert_eq!(
            held.iter().filter(|r| r.is_ok()).count(),
            MAX_FAILURES as usize
        );
        let refused: Vec<_> = held.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(refused[0].first && refused[1..].iter().all(|r| !r.first));
    }

    #[test]
    fn strangers_cannot_lock_out_a_known_device() {
        let l = Limiter::default();
        let key = DeviceKey::random();
        let cookie = key.issue("admin");
        for n in 0..20 {
            let c = Client::Untrusted {
                name: "admin",
                ip: ip(n),
            };
            if let Ok(a) = l.reserve(&c) {
                a.failed();
            }
        }
        assert!(
            l.locked(&Client::Untrusted {
                name: "admin",
                ip: ip(99)
            })
            .is_some()
        );
        let id = key.check("admin", &cookie).expect("valid cookie");
        assert!(l.reserve(&Client::Device { id }).is_ok());
        // The cookie is bound to its user name and to this server's key.
        assert!(key.check("root", &cookie).is_none());
        assert!(DeviceKey::random().check("admin", &cookie).is_none());
        assert!(key.check("admin", "00.11").is_none());
    }

    #[test]
    fn filling_the_table_does_not_reset_a_guessed_name() {
        let l = Limiter::default();
        let admin = Client::Untrusted {
            name: "admin",
            ip: ip(1),
        };
        for _ in 0..4 {
            l.reserve(&admin).unwrap().failed();
        }
        // A flood of fresh names from many addresses, each refunded (as a
        // busy hashing gate would), then many real failures.
        for i in 0..(MAX_KEYS as u32 + 100) {
            let a = IpAddr::from(i.to_be_bytes());
            let name = format!("n{i}");
            l.reserve(&Client::Untrusted { name: &name, ip: a })
                .unwrap()
                .refund();
        }
        for i in 0..(MAX_KEYS as u32 / 2 + 100) {
            let a = IpAddr::from((i + 1_000_000).to_be_bytes());
            let name = format!("m{i}");
            l.reserve(&Client::Untrusted { name: &name, ip: a })
                .unwrap()
                .failed();
        }
        l.reserve(&admin).unwrap().failed();
        assert!(
            l.locked(&admin).is_some(),
            "the fifth failure still locks admin"
        );
    }

    #[test]
    fn an_ipv6_host_is_one_address() {
        let l = Limiter::default();
        for i in 0..5u16 {
            let a = IpAddr::from([0x2001, 0xdb8, 1, 2, i, 0, 0, 1]);
            let name = format!("u{i}");
            l.reserve(&Client::Untrusted { name: &name, ip: a })
                .unwrap()
                .failed();
        }
        let other = IpAddr::from([0x2001, 0xdb8, 1, 2, 9, 9, 9, 9]);
        assert!(
            l.reserve(&Client::Untrusted {
                name: "x",
                ip: other
            })
            .is_err()
        );
    }

    #[test]
    fn success_and_refund_give_the_attempt_back() {
        let l = Limiter::default();
        let c = Client::Untrusted {
            name: "u",
            ip: ip(1),
        };
        for _ in 0..20 {
            l.reserve(&c).unwrap().refund();
        }
        for _ in 0..4 {
            l.reserve(&c).unwrap().failed();
        }
        l.reserve(&c).unwrap().succeeded();
        assert!(l.reserve(&c).is_ok());
    }

    #[test]
    fn a_lockout_reports_its_refusals_once_over() {
        let l = Limiter::default();
        let c = Client::Untrusted {
            name: "u",
            ip: ip(1),
        };
        for _ in 0..MAX_FAILURES {
            l.reserve(&c).unwrap().failed();
        }
        for _ in 0..100 {
            assert!(l.reserve(&c).is_err());
        }
        assert!(l.take_ended().is_empty(), "still locked");
        // Expire the lockout by hand.
        for f in l.map().values_mut() {
            f.locked_until = Some(Instant::now());
        }
        let ended = l.take_ended();
        assert_eq!(ended.len(), 2);
        assert!(ended.iter().all(|e| e.refused == 100));
    }
}
