//! The one script a fleet-wide admission link runs per flush interval: publish this
//! instance's counts, read the fleet's, take probes from the fleet-wide quota, announce a
//! close, all in one atomic round trip on the server's clock.
//!
//! Two keys per name, sharing the hash tag `{ra:NAME}` (one cluster slot):
//!
//! - `{ra:NAME}:c`, a hash with one field per instance (a random id per `Admission`):
//!   `"<server ms> <epoch> <accepted> <failed>"`, the counts of that instance's window when
//!   it last flushed. Entries older than `stale_ms` (three flush intervals) are deleted, so
//!   an instance that went away stops counting; unreadable entries are deleted too.
//! - `{ra:NAME}:s`, a hash: `ct` the close token (the server time in microseconds of the
//!   last accepted probe anywhere; 0 or missing before any), `ps`/`pu` the start of the
//!   current probe interval (server ms) and the probes handed out in it.
//!
//! The fleet's totals add the entries whose epoch is the current close token: counts an
//! instance published before it learnt of the last close (its window still full of the
//! outage's failures) do not count, so a close is not undone by the fleet's memory of the
//! outage. Adding counts weighs each instance by its traffic.

use fred::types::Value;

/// KEYS[1] counts hash, KEYS[2] state hash.
/// ARGV: id, accepted, failed, epoch (-1: the current one), closes (> 0: this instance
/// closed since its last flush), want (probes asked for), probes (the quota per interval),
/// probe_interval_ms, stale_ms, expire_ms.
/// Returns {accepted, failed, instances, close token, probes granted}.
pub(super) const FLUSH_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st = redis.call('HMGET', KEYS[2], 'ct', 'ps', 'pu')
local token = tonumber(st[1]) or 0
local closes = tonumber(ARGV[5])
if closes > 0 then
  local nt = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if nt <= token then nt = token + 1 end
  token = nt
  redis.call('HSET', KEYS[2], 'ct', string.format('%d', token))
end
local epoch = tonumber(ARGV[4])
if epoch < 0 or closes > 0 then epoch = token end
redis.call('HSET', KEYS[1], ARGV[1],
  string.format('%d %d %d %d', now, epoch, tonumber(ARGV[2]), tonumber(ARGV[3])))
local stale = tonumber(ARGV[9])
local flat = redis.call('HGETALL', KEYS[1])
local accepted, failed, n = 0, 0, 0
for i = 1, #flat, 2 do
  local ts, ep, a, f = string.match(flat[i + 1], '^(%d+) (%-?%d+) (%d+) (%d+)$')
  ts = tonumber(ts)
  if ts == nil or now - ts > stale or ts - now > stale then
    redis.call('HDEL', KEYS[1], flat[i])
  elseif tonumber(ep) == token then
    accepted = accepted + tonumber(a)
    failed = failed + tonumber(f)
    n = n + 1
  end
end
local granted = 0
local want = tonumber(ARGV[6])
if want > 0 then
  local ps = tonumber(st[2])
  local pu = tonumber(st[3]) or 0
  if ps == nil or now >= ps + tonumber(ARGV[8]) or ps > now then
    ps = now
    pu = 0
  end
  granted = math.min(want, tonumber(ARGV[7]) - pu)
  if granted < 0 then granted = 0 end
  redis.call('HSET', KEYS[2], 'ps', string.format('%d', ps), 'pu', string.format('%d', pu + granted))
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[10]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[10]))
return {accepted, failed, n, token, granted}
"#;

/// What the script answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Reply {
    pub(super) accepted: u64,
    pub(super) failed: u64,
    pub(super) instances: u64,
    pub(super) token: i64,
    pub(super) granted: u32,
}

impl Reply {
    /// Reads a reply; `None` for anything but five integers in range (never panics).
    pub(super) fn parse(value: &Value) -> Option<Reply> {
        let Value::Array(v) = value else { return None };
        if v.len() != 5 {
            return None;
        }
        let int = |i: usize| match &v[i] {
            Value::Integer(n) => Some(*n),
            _ => None,
        };
        let count = |i: usize| int(i).and_then(|n| u64::try_from(n).ok());
        Some(Reply {
            accepted: count(0)?,
            failed: count(1)?,
            instances: count(2)?,
            token: int(3).filter(|t| *t >= 0)?,
            granted: count(4).and_then(|n| u32::try_from(n).ok())?,
        })
    }
}

/// The keys of `name` (validated: no braces), sharing one hash tag.
pub(super) fn keys(name: &str) -> [String; 2] {
    [format!("{{ra:{name}}}:c"), format!("{{ra:{name}}}:s")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_the_wrong_shape_or_out_of_range_are_refused() {
        let ints = |v: &[i64]| Value::Array(v.iter().map(|n| Value::Integer(*n)).collect());
        assert_eq!(
            Reply::parse(&ints(&[3, 4, 2, 17, 1])),
            Some(Reply {
                accepted: 3,
                failed: 4,
                instances: 2,
                token: 17,
                granted: 1
            })
        );
        for bad in [
            ints(&[3, 4, 2, 17]),
            ints(&[3, 4, 2, 17, 1, 0]),
            ints(&[-1, 4, 2, 17, 1]),
            ints(&[3, 4, 2, -5, 1]),
            ints(&[3, 4, 2, 17, i64::MAX]),
            Value::Integer(1),
            Value::Null,
            Value::Array(vec![Value::from("x"); 5]),
        ] {
            assert_eq!(Reply::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn both_keys_share_one_hash_tag() {
        assert_eq!(
            keys("api"),
            ["{ra:api}:c".to_owned(), "{ra:api}:s".to_owned()]
        );
        let slot = |k: &str| fred::util::redis_keyslot(k.as_bytes());
        let [c, s] = keys("api");
        assert_eq!(slot(&c), slot(&s));
    }
}
