//! The Lua scripts that keep a budget's window in Redis, and how they are called.
//!
//! Each operation is one script, so it is atomic, and each reads the server's `TIME`, so the
//! clocks of the instances do not matter. The window is one hash per budget with a field per
//! slot (`d<slot>` deposits, `w<slot>` withdrawals), the same layout as the local
//! [`RatioBudget`](crate::budget::RatioBudget): the window is `SLOTS` slots of `ttl / SLOTS`.
//!
//! The adaptive mode keeps one hash per budget, `{rb:NAME}:q`, with the stock `s` (in the
//! fixed-point units of [`AdaptiveBudget`](crate::budget::AdaptiveBudget)) and the server time
//! `t` (ms) its time-based refill was last applied. A missing key is a full stock.
//!
//! Both keep, in field `p`, a fingerprint of the parameters of the instance that created the
//! state (see [`fingerprint`]); an instance with other parameters is told so (flag
//! [`MISMATCH`]) and keeps its own semantics. Every script answers `{first, second, flags}`.
//! State out of range (a stock below zero or beyond 2^53, a count that is not a whole
//! non-negative number, a field that is not a slot) is corruption: it is reset (the stock to
//! a full one, as if the key were new; a bad slot field deleted) and flag [`REPAIRED`] says so.

/// Flag: the script found corrupted state and reset it.
pub(crate) const REPAIRED: i64 = 1;
/// Flag: the state was created with other parameters than this instance's.
pub(crate) const MISMATCH: i64 = 2;

/// The parameters that give shared state its meaning, hashed (FNV-1a) into 52 bits, which a
/// Lua number holds exactly.
pub(crate) fn fingerprint(values: &[i64]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        for b in v.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (h & ((1 << 52) - 1)) as i64
}

/// Checks the parameters' fingerprint (the last ARGV) against field `p`, setting it on a
/// new key; starts `flags`.
const CHECK_PARAMS_LUA: &str = r#"
local flags = 0
local repaired = 0
local fp = ARGV[#ARGV]
local stored = redis.call('HGET', KEYS[1], 'p')
if not stored then
  redis.call('HSET', KEYS[1], 'p', fp)
elseif stored ~= fp then
  flags = 2
end
local function count_ok(v)
  local n = tonumber(v)
  return n ~= nil and n == n and n >= 0 and n <= 9007199254740992 and math.floor(n) == n
end
"#;

use fred::prelude::{ClientLike, Error, ErrorKind, Options};
use fred::types::{ClusterHash, CustomCommand, Value};
use fred::util::sha1_hash;

/// Adds a batch of deposits to the current slot.
///
/// KEYS[1] window hash. ARGV: count, slot_ms, slots, expire_ms.
/// Prunes slots that left the window once the hash has grown, so a budget that only ever
/// deposits stays small; the key expires when the budget goes idle.
const DEPOSIT_LUA_TAIL: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot_ms = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local slot = math.floor(now_ms / slot_ms)
local field = 'd' .. slot
if not count_ok(redis.call('HGET', KEYS[1], field) or 0) then
  redis.call('HDEL', KEYS[1], field)
  repaired = 1
end
redis.call('HINCRBY', KEYS[1], field, tonumber(ARGV[1]))
if redis.call('HLEN', KEYS[1]) > 4 * slots then
  local oldest = slot - slots + 1
  local fields = redis.call('HKEYS', KEYS[1])
  for i = 1, #fields do
    local s = tonumber(string.sub(fields[i], 2))
    if fields[i] ~= 'p' and (s == nil or s < oldest or s > slot + slots) then
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {1, 0, flags + repaired}
"#;

/// Grants up to `want` retries: allowed = floor((reserve + ratio × deposits) / unit) minus the
/// withdrawals already in the window (fixed-point, exactly as the local budget computes it).
///
/// KEYS[1] window hash. ARGV: want, slot_ms, slots, reserve_units, ratio_units, unit, expire_ms.
/// Returns the number granted (0 to want).
const WITHDRAW_LUA_TAIL: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[1])
local slot_ms = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local slot = math.floor(now_ms / slot_ms)
local oldest = slot - slots + 1
local flat = redis.call('HGETALL', KEYS[1])
local deposits, withdrawals = 0, 0
for i = 1, #flat, 2 do
  local f = flat[i]
  local s = tonumber(string.sub(f, 2))
  local kind = string.sub(f, 1, 1)
  if f == 'p' then
    -- the parameters' fingerprint
  elseif s == nil or (kind ~= 'd' and kind ~= 'w') or not count_ok(flat[i + 1]) then
    redis.call('HDEL', KEYS[1], f)
    repaired = 1
  elseif s < oldest or s > slot + slots then
    redis.call('HDEL', KEYS[1], f)
  elseif kind == 'd' then
    deposits = deposits + tonumber(flat[i + 1])
  else
    withdrawals = withdrawals + tonumber(flat[i + 1])
  end
end
local allowed = math.floor((tonumber(ARGV[4]) + tonumber(ARGV[5]) * deposits) / tonumber(ARGV[6]))
local grant = math.min(want, allowed - withdrawals)
if grant < 0 then grant = 0 end
if grant > 0 then
  redis.call('HINCRBY', KEYS[1], 'w' .. slot, grant)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
return {grant, 0, flags + repaired}
"#;

/// The refill both adaptive scripts apply first: `min_per_sec` for the time since `t`, capped.
/// ARGV[2] cap_units, ARGV[3] refill units per second (a multiple of 1000, so milliseconds
/// convert exactly), ARGV[4] expire_ms.
const ADAPTIVE_REFILL_LUA: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 's', 't')
local stock = cap
if v[1] then
  if count_ok(v[1]) then
    stock = tonumber(v[1])
  else
    repaired = 1
  end
end
local last = now_ms
if v[2] then
  if count_ok(v[2]) then
    last = math.min(tonumber(v[2]), now_ms)
  else
    repaired = 1
  end
end
stock = math.min(cap, stock + (now_ms - last) * tonumber(ARGV[3]) / 1000)
"#;

/// Credits a batch of successes. ARGV[1] count × ratio_units (computed by the client), then
/// the refill arguments. Returns the stock.
const CREDIT_LUA_TAIL: &str = r#"
stock = math.min(cap, stock + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 's', string.format('%d', stock), 't', string.format('%d', now_ms))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {0, stock, flags + repaired}
"#;

/// Takes up to ARGV[1] whole retries (ARGV[5] units each). Returns {granted, stock}.
const TAKE_LUA_TAIL: &str = r#"
local unit = tonumber(ARGV[5])
local grant = math.min(tonumber(ARGV[1]), math.floor(stock / unit))
if grant < 0 then grant = 0 end
stock = stock - grant * unit
redis.call('HSET', KEYS[1], 's', string.format('%d', stock), 't', string.format('%d', now_ms))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {grant, stock, flags + repaired}
"#;

/// What a budget script answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Retries granted (withdrawals), or 1 / 0 (deposits).
    pub(crate) first: i64,
    /// The stock after the call (adaptive mode), else 0.
    pub(crate) second: i64,
    /// [`REPAIRED`] and [`MISMATCH`].
    pub(crate) flags: i64,
}

/// A script with its SHA-1, called with `EVALSHA` and loaded again after `NOSCRIPT`.
#[derive(Debug)]
pub(crate) struct Script {
    lua: String,
    sha: String,
}

impl Script {
    pub(crate) fn new(lua: impl Into<String>) -> Self {
        let lua = lua.into();
        Script {
            sha: sha1_hash(&lua),
            lua,
        }
    }

    /// Runs the script on the node that owns `slot`. One round trip normally; three after a
    /// restart or failover emptied the server's script cache.
    pub(crate) async fn call<C: ClientLike>(
        &self,
        client: &C,
        options: &Options,
        slot: u16,
        key: &str,
        args: &[i64],
    ) -> Result<Reply, Error> {
        let reply = self.call_value(client, options, slot, key, args).await?;
        match &reply {
            Value::Array(v) if v.len() == 3 => {
                match (v[0].as_i64(), v[1].as_i64(), v[2].as_i64()) {
                    (Some(first), Some(second), Some(flags)) => Ok(Reply {
                        first,
                        second,
                        flags,
                    }),
                    _ => Err(unexpected(&reply)),
                }
            }
            _ => Err(unexpected(&reply)),
        }
    }

    async fn call_value<C: ClientLike>(
        &self,
        client: &C,
        options: &Options,
        slot: u16,
        key: &str,
        args: &[i64],
    ) -> Result<Value, Error> {
        let args = args.iter().map(|a| Value::Integer(*a)).collect();
        self.eval(client, options, slot, &[key], args).await
    }

    /// Runs the script with `keys` (all in `slot`) and `args`, answering its raw reply.
    pub(crate) async fn eval<C: ClientLike>(
        &self,
        client: &C,
        options: &Options,
        slot: u16,
        keys: &[&str],
        args: Vec<Value>,
    ) -> Result<Value, Error> {
        let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
        argv.push(Value::from(self.sha.as_str()));
        argv.push(Value::Integer(keys.len() as i64));
        argv.extend(keys.iter().map(|k| Value::from(*k)));
        argv.extend(args);
        let client = client.with_options(options);
        let evalsha = || CustomCommand::new_static("EVALSHA", ClusterHash::Custom(slot), false);
        match client.custom::<Value, Value>(evalsha(), argv.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                self.load_on(&client, slot).await?;
                client.custom::<Value, Value>(evalsha(), argv).await
            }
            other => other,
        }
    }

    /// `SCRIPT LOAD` on the node that owns `slot`.
    pub(crate) async fn load_on<C: ClientLike>(&self, client: &C, slot: u16) -> Result<(), Error> {
        let load = CustomCommand::new_static("SCRIPT", ClusterHash::Custom(slot), false);
        client
            .custom::<Value, Value>(
                load,
                vec![Value::from("LOAD"), Value::from(self.lua.as_str())],
            )
            .await
            .map(drop)
    }
}

fn unexpected(reply: &Value) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("budget script returned {reply:?}, expected integers"),
    )
}

/// The two scripts of a budget: one that adds a batch (deposits or successes), one that
/// grants retries.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) deposit: Script,
    pub(crate) withdraw: Script,
}

impl Scripts {
    /// The ratio window's scripts.
    pub(crate) fn ratio() -> Self {
        Scripts {
            deposit: Script::new(format!("{CHECK_PARAMS_LUA}{DEPOSIT_LUA_TAIL}")),
            withdraw: Script::new(format!("{CHECK_PARAMS_LUA}{WITHDRAW_LUA_TAIL}")),
        }
    }

    /// The adaptive stock's scripts.
    pub(crate) fn adaptive() -> Self {
        Scripts {
            deposit: Script::new(format!(
                "{CHECK_PARAMS_LUA}{ADAPTIVE_REFILL_LUA}{CREDIT_LUA_TAIL}"
            )),
            withdraw: Script::new(format!(
                "{CHECK_PARAMS_LUA}{ADAPTIVE_REFILL_LUA}{TAKE_LUA_TAIL}"
            )),
        }
    }
}
