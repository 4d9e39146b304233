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

use fred::prelude::{ClientLike, Error, ErrorKind, Options};
use fred::types::{ClusterHash, CustomCommand, Value};
use fred::util::sha1_hash;

/// Adds a batch of deposits to the current slot.
///
/// KEYS[1] window hash. ARGV: count, slot_ms, slots, expire_ms.
/// Prunes slots that left the window once the hash has grown, so a budget that only ever
/// deposits stays small; the key expires when the budget goes idle.
const DEPOSIT_LUA: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot_ms = tonumber(ARGV[2])
local slots = tonumber(ARGV[3])
local slot = math.floor(now_ms / slot_ms)
redis.call('HINCRBY', KEYS[1], 'd' .. slot, tonumber(ARGV[1]))
if redis.call('HLEN', KEYS[1]) > 4 * slots then
  local oldest = slot - slots + 1
  local fields = redis.call('HKEYS', KEYS[1])
  for i = 1, #fields do
    local s = tonumber(string.sub(fields[i], 2))
    if s == nil or s < oldest or s > slot + slots then
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"#;

/// Grants up to `want` retries: allowed = floor((reserve + ratio × deposits) / unit) minus the
/// withdrawals already in the window (fixed-point, exactly as the local budget computes it).
///
/// KEYS[1] window hash. ARGV: want, slot_ms, slots, reserve_units, ratio_units, unit, expire_ms.
/// Returns the number granted (0 to want).
const WITHDRAW_LUA: &str = r#"
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
  if s == nil or s < oldest or s > slot + slots then
    redis.call('HDEL', KEYS[1], f)
  elseif string.sub(f, 1, 1) == 'd' then
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
return grant
"#;

/// The refill both adaptive scripts apply first: `min_per_sec` for the time since `t`, capped.
/// ARGV[2] cap_units, ARGV[3] refill units per second (a multiple of 1000, so milliseconds
/// convert exactly), ARGV[4] expire_ms.
const ADAPTIVE_REFILL_LUA: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 's', 't')
local stock = tonumber(v[1]) or cap
local last = tonumber(v[2]) or now_ms
if last > now_ms then last = now_ms end
stock = math.min(cap, stock + (now_ms - last) * tonumber(ARGV[3]) / 1000)
"#;

/// Credits a batch of successes. ARGV[1] count × ratio_units (computed by the client), then
/// the refill arguments. Returns the stock.
const CREDIT_LUA_TAIL: &str = r#"
stock = math.min(cap, stock + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 's', string.format('%d', stock), 't', string.format('%d', now_ms))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {0, stock}
"#;

/// Takes up to ARGV[1] whole retries (ARGV[5] units each). Returns {granted, stock}.
const TAKE_LUA_TAIL: &str = r#"
local unit = tonumber(ARGV[5])
local grant = math.min(tonumber(ARGV[1]), math.floor(stock / unit))
if grant < 0 then grant = 0 end
stock = stock - grant * unit
redis.call('HSET', KEYS[1], 's', string.format('%d', stock), 't', string.format('%d', now_ms))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return {grant, stock}
"#;

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
    ) -> Result<i64, Error> {
        let reply = self.call_value(client, options, slot, key, args).await?;
        reply.as_i64().ok_or_else(|| unexpected(&reply))
    }

    /// Runs a script that answers `{first, second}`.
    pub(crate) async fn call_pair<C: ClientLike>(
        &self,
        client: &C,
        options: &Options,
        slot: u16,
        key: &str,
        args: &[i64],
    ) -> Result<(i64, i64), Error> {
        let reply = self.call_value(client, options, slot, key, args).await?;
        match &reply {
            Value::Array(v) if v.len() == 2 => match (v[0].as_i64(), v[1].as_i64()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(unexpected(&reply)),
            },
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
            deposit: Script::new(DEPOSIT_LUA),
            withdraw: Script::new(WITHDRAW_LUA),
        }
    }

    /// The adaptive stock's scripts.
    pub(crate) fn adaptive() -> Self {
        Scripts {
            deposit: Script::new(format!("{ADAPTIVE_REFILL_LUA}{CREDIT_LUA_TAIL}")),
            withdraw: Script::new(format!("{ADAPTIVE_REFILL_LUA}{TAKE_LUA_TAIL}")),
        }
    }
}
