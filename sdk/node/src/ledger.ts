/** Command ids seen and acks not yet confirmed by the service, both bounded (mirrors the Python CommandLedger). */
import { CommandAck } from "./gen/workermon/heartbeat/v1/heartbeat_service.js";
import { MAX_ACKS_PER_BEAT, MAX_RESULT_CHARS } from "./limits.js";

/** What carrying out a command came to, as its ack says it. */
export interface CommandOutcome {
  ok: boolean;
  result: string;
  /** The worker cannot do this kind of command at all (ok is then false). */
  unsupported?: boolean;
}

/**
 * An ack is sent on every beat until a response arrives after the beat that carried it, so the service may
 * see an ack more than once and treats repeats as no-ops.
 */
export class CommandLedger {
  // Insertion-ordered maps: the oldest entry is the first key, dropped first when over the bound.
  private readonly seen = new Map<string, CommandAck | null>();
  private readonly unconfirmed = new Map<string, { ack: CommandAck; sent: boolean }>();

  /** Create a ledger remembering `maxRemembered` ids and holding `maxUnconfirmed` acks. */
  constructor(
    private readonly maxRemembered = 1000,
    private readonly maxUnconfirmed = MAX_ACKS_PER_BEAT,
  ) {}

  /** True if the command is new and should be carried out; false for a repeat. */
  admit(commandId: string): boolean {
    if (this.seen.has(commandId)) return false;
    this.seen.set(commandId, null);
    dropOldest(this.seen, this.maxRemembered);
    return true;
  }

  /** Queue the ack of an answered command again (the service did not get it); true if it was not waiting. */
  resend(commandId: string): boolean {
    const ack = this.seen.get(commandId);
    if (!ack || this.unconfirmed.has(commandId)) return false;
    this.enqueue(ack);
    return true;
  }

  /** Record the outcome of a command and queue its ack. */
  complete(commandId: string, outcome: CommandOutcome): CommandAck {
    const ack = CommandAck.fromPartial({
      commandId,
      ok: outcome.ok && !outcome.unsupported,
      result: outcome.result.slice(0, MAX_RESULT_CHARS),
      unsupported: outcome.unsupported ?? false,
    });
    if (this.seen.has(commandId)) this.seen.set(commandId, ack);
    this.enqueue(ack);
    return ack;
  }

  /** Every unconfirmed ack, for the next beat; they are marked as sent. */
  outgoing(): CommandAck[] {
    const acks: CommandAck[] = [];
    for (const entry of this.unconfirmed.values()) {
      entry.sent = true;
      acks.push(entry.ack);
    }
    return acks;
  }

  /** Forget the acks sent before a response from the service arrived. */
  confirm(): void {
    for (const [id, entry] of this.unconfirmed) if (entry.sent) this.unconfirmed.delete(id);
  }

  /** Number of acks waiting to be confirmed. */
  get pending(): number {
    return this.unconfirmed.size;
  }

  /** Number of command ids remembered for de-duplication. */
  get remembered(): number {
    return this.seen.size;
  }

  private enqueue(ack: CommandAck): void {
    this.unconfirmed.delete(ack.commandId);
    this.unconfirmed.set(ack.commandId, { ack, sent: false });
    dropOldest(this.unconfirmed, this.maxUnconfirmed);
  }
}

/** Drop a map's oldest entries until it holds at most `limit`. */
function dropOldest<K, V>(map: Map<K, V>, limit: number): void {
  for (const key of map.keys()) {
    if (map.size <= limit) return;
    map.delete(key);
  }
}
