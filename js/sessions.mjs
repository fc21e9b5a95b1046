// The per-user Durable Object (binding SESSIONS, one object per `sub`):
// strongly consistent storage for the revocations that must be seen at
// once (strict paths) and for spending refresh tokens exactly once.
//
// It only stores. What a spend decides is the Rust core's (src/refresh.rs,
// exported by src/edge/object.rs): the object reads the keys the core
// names, hands their values over, and writes what the plan says. No other
// call to this object runs in between: while it waits on its own storage
// its input gate is closed, and the wasm call is synchronous.
//
// Storage: one record per key, `{ value, expiresAt }` (Unix seconds, or
// null for "until overwritten"), under the same key names as KV
// (`v1:jti:`, `v1:sub:`, `v1:sid:`) plus `v1:spent:` and `v1:latest:`.
// An expired record reads as absent; an alarm deletes expired records.
import { DurableObject } from "cloudflare:workers";
import { merge_entry, spend_keys, spend_plan } from "./index.js";

const nowSeconds = () => Date.now() / 1000;
/** A record's value while it lives, else null. A record of another shape fails closed. */
function live(record, now) {
  if (record === undefined) return null;
  if (typeof record?.value !== "string") throw new Error("SessionObject: unreadable record");
  return record.expiresAt === null || record.expiresAt > now ? record.value : null;
}
/** storage.delete takes at most 128 keys at a time. */
const DELETE_BATCH = 128;

export class SessionObject extends DurableObject {
  /** One value (string or null) per key. */
  async read(keys) {
    const found = await this.ctx.storage.get(keys);
    const now = nowSeconds();
    return keys.map((key) => live(found.get(key), now));
  }

  async write(key, value, expiresAt) {
    await this.store([{ key, value, expires_at: expiresAt }]);
  }

  /**
   * Spends a refresh token. `request` is the core's flat list of fields;
   * the plan comes back as [outcome, key, value, expiresAt or "", ...].
   * Answers the outcome ("spent", "retried", "reused", "revoked").
   */
  async spend(request) {
    const keys = spend_keys(request);
    const values = await this.read(keys);
    const [outcome, ...fields] = spend_plan(request, values, nowSeconds());
    const writes = [];
    for (let i = 0; i < fields.length; i += 3) {
      writes.push({ key: fields[i], value: fields[i + 1], expires_at: fields[i + 2] === "" ? null : Number(fields[i + 2]) });
    }
    await this.store(writes);
    return outcome;
  }

  /**
   * Every stored record, for operators and tests: [key, value, expiresAt].
   * Expired records read as absent at once and are deleted by the alarm;
   * until it runs they show here.
   */
  async entries() {
    const all = await this.ctx.storage.list();
    return [...all].map(([key, record]) => [key, record.value, record.expiresAt]);
  }

  /** Writes entries; a user cut-off is never lowered (the core's merge rule). */
  async store(writes) {
    if (writes.length === 0) return;
    const stored = await this.ctx.storage.get(writes.map((w) => w.key));
    const records = {};
    for (const { key, value, expires_at: expiresAt } of writes) {
      const before = stored.get(key);
      const kept = merge_entry(key, before?.value, value);
      records[key] = kept === value ? { value, expiresAt: expiresAt ?? null } : before;
    }
    await this.ctx.storage.put(records);
    const soonest = Math.min(...writes.map((w) => w.expires_at ?? Infinity));
    if (soonest !== Infinity) await this.wakeAt(soonest);
  }

  async wakeAt(seconds) {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || seconds * 1000 < current) await this.ctx.storage.setAlarm(seconds * 1000);
  }

  /** Deletes what has expired, and sleeps until the next expiry. */
  async alarm() {
    const now = nowSeconds();
    const all = await this.ctx.storage.list();
    const expired = [];
    let next = Infinity;
    for (const [key, record] of all) {
      if (record.expiresAt === null) continue;
      if (record.expiresAt <= now) expired.push(key);
      else next = Math.min(next, record.expiresAt);
    }
    for (let i = 0; i < expired.length; i += DELETE_BATCH) {
      await this.ctx.storage.delete(expired.slice(i, i + DELETE_BATCH));
    }
    if (next !== Infinity) await this.ctx.storage.setAlarm(next * 1000);
  }
}
