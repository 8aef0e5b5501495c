/**
 * The raw TPM channel (issue 15; docs/API.md "Raw TPM channel", docs/FIREWALL.md): an HTTP/1.1
 * upgrade on the /v1 listeners, authenticated exactly as /v1 requests are, after which the
 * connection carries TPM command frames one at a time. Each command is one job on the TPM
 * queue under the tenant's name (its fair share), run through the firewall in the
 * connection's own resource-manager context (space.ts).
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { TPM_RC, type TpmRunner } from '../../tpm/index.js';
import type { Transport } from '../../tpm/transport/types.js';
import { errorFrame } from '../../firewall/refusal.js';
import { badRequest, serviceBusy, ServiceError } from '../protocol/errors.js';
import { rawErrorResponse } from '../http/respond.js';
import { authenticate, bearerSecret, type Peer } from '../tenants/auth.js';
import { recordOf, type Tenant, type TenantDirectory } from '../tenants/tenants.js';
import { isTpmUnreachable } from '../tpm/error-mapping.js';
import type { TpmQueue } from '../tpm/queue.js';
import { RawApps } from './apps.js';
import { loadClockKey } from './clock-key.js';
import { RawSpace } from './space.js';
import { namedHandles } from '../../firewall/names.js';
import { KeygenBudgets } from './budgets.js';
import { KeptIdle } from './kept-idle.js';
import { KeptFile } from './kept-file.js';
import { syncDaTotal } from './da-figures.js';
import { purgeAppState, RAW_STATE_DIR } from './purge-state.js';
import { BadFrameSize, FrameReader, RAW_PATH, RAW_PROTOCOL } from './wire.js';

/** A raw connection silent this long between commands is closed (its context with it), as an idle /v1 one. */
export const RAW_IDLE_MS = 10 * 60_000;

export interface RawChannelDeps {
  queue: TpmQueue;
  /** The chip outside any job's account, and its transport (used only inside queue jobs). */
  chip: TpmRunner;
  transport: Transport;
  log: Logger;
  tenants(): TenantDirectory;
  singleTenant?: Tenant;
  draining(): boolean;
  /** Time a frame may take to arrive once begun (as the HTTP header deadline). */
  frameTimeoutMs: number;
  /** Time a connection may stay silent between commands; its context is then closed. */
  idleTimeoutMs: number;
  /** The apps' RSA key generation budgets (budgets.ts; default: DEFAULT_KEYGEN on the real clock). */
  keygen?: KeygenBudgets;
}

/** What the HTTP front does for an accepted upgrade: counts the connection as a tenant's and busy. */
export interface UpgradeGate {
  hold(socket: Duplex): void;
}

/** Whether a request asks for the raw channel (the front hands the rest to its own refusal). */
export function isRawUpgrade(req: IncomingMessage): boolean {
  return (req.url ?? '').split('?')[0] === RAW_PATH;
}

export class RawChannel {
  private apps = new RawApps();
  private open = 0;
  /** Every connection's context until its close job ran. */
  private readonly spaces = new Set<RawSpace>();
  /** Each open connection's socket with its tenant: closed at once when the tenant is removed (tenantsChanged). */
  private readonly live = new Map<Duplex, { record: string; tenant: string }>();
  /** Time limits (docs/FIREWALL.md "Time budgets", "Kept state"): RSA keygen budgets; kept sessions' idle flush. */
  private readonly keygen: KeygenBudgets;
  private readonly keptIdle: KeptIdle;
  /** The chip's DA figures are to be read again (the TPM stopped answering: it may come back restarted). */
  private daStale = false;

  constructor(private readonly d: RawChannelDeps) {
    [this.keygen, this.keptIdle] = [d.keygen ?? new KeygenBudgets(), new KeptIdle(d)];
    // A TPM that stopped answering may come back restarted: kept objects are given up, as the object cache's.
    d.queue.events.on('done', (ev: { error?: unknown }) => {
      if (ev.error !== undefined && isTpmUnreachable(ev.error)) {
        for (const s of this.spaces) s.lost();
        this.daStale = true;
      }
    });
  }

  /** Reads the apps' kept state (NV placement, virtual persistent handles) before any connection. */
  async loadState(stateDir: string): Promise<void> {
    this.apps = await RawApps.load(join(stateDir, RAW_STATE_DIR), this.d.log);
    await loadClockKey(join(stateDir, RAW_STATE_DIR), this.d.log);
    // Before any app command (docs/FIREWALL.md "DA safety", kept sessions); a TPM that fails here is logged, never fatal.
    const kept = new KeptFile(join(stateDir, RAW_STATE_DIR), this.d.log);
    await Promise.all([kept.flushPrevious(this.d.queue, await kept.previous()), syncDaTotal(this.d.queue, this.apps.daTotal, this.d.log)]);
  }

  /**
   * A purged tenant record (tenants/purge.ts): its NV indices undefined on the chip (the
   * owner's authorization, EVE's empty one) and its kept state removed. Returns how many
   * indices were undefined.
   */
  purge(record: string): Promise<number> {
    return purgeAppState(this.apps, this.d.queue, record, this.d.log);
  }

  get connections(): number {
    return this.open;
  }

  /**
   * The tenants file was reloaded (tenants/live-tenants.ts): a removed tenant's connections end
   * now, not at their next command; the close flushes their context as any close does.
   */
  tenantsChanged(): void {
    if (this.d.singleTenant) return;
    const dir = this.d.tenants();
    for (const [socket, c] of this.live) {
      if (dir.ofRecord(c.record)) continue;
      this.live.delete(socket);
      this.d.log.info({ event: 'raw-tenant-gone', tenant: c.tenant, record: c.record }, 'the tenant is no longer configured: closing its raw channel');
      socket.destroy();
    }
  }

  /** An `upgrade` request on RAW_PATH: 101 and the frame loop, or a JSON error and close. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer, gate: UpgradeGate): void {
    socket.on('error', () => {});
    let tenant: Tenant;
    try {
      if (this.d.draining()) throw serviceBusy('the service is shutting down');
      if (req.method !== 'GET') throw badRequest(`the raw channel is opened with GET ${RAW_PATH}`);
      const wanted = (req.headers.upgrade ?? '').toLowerCase();
      if (wanted !== RAW_PROTOCOL) throw badRequest(`${RAW_PATH} upgrades to "${RAW_PROTOCOL}" only`);
      tenant = this.d.singleTenant ?? authenticate(this.d.tenants(), peer, bearerSecret(req.rawHeaders));
    } catch (e) {
      const err = e instanceof ServiceError ? e : badRequest('malformed upgrade request');
      this.d.log.info({ event: 'raw-denied', listener: peer.listener, cid: peer.cid, status: err.status }, `raw channel refused: ${err.message}`);
      socket.end(rawErrorResponse(err.status, STATUS_CODES[err.status] ?? 'Error', err));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    gate.hold(socket);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${RAW_PROTOCOL}\r\n\r\n`);
    this.serve(socket, head, tenant);
  }

  private serve(socket: Duplex, head: Buffer, tenant: Tenant): void {
    const record = recordOf(tenant);
    const fields = { tenant: tenant.id, record };
    const log = this.d.log;
    const raw = this.apps.app(record);
    const app = raw.state;
    if (this.daStale) {
      this.daStale = false;
      void syncDaTotal(this.d.queue, this.apps.daTotal, log).then((ok) => void (this.daStale ||= !ok));
    }
    const space = new RawSpace(app, { chip: this.d.chip, transport: this.d.transport, transients: this.d.queue.transients, log, raw }, fields);
    this.spaces.add(space);
    const reader = new FrameReader();
    const stop = new AbortController();
    let busy = false;
    let closed = false;
    let ended = false;
    let commands = 0;
    let timer: NodeJS.Timeout | undefined;
    /** What the timer waits for: a frame begun must be whole by its deadline, however it trickles. */
    let waiting: 'idle' | 'frame' | undefined;
    this.open++;
    this.live.set(socket, { record, tenant: tenant.id });
    socket.once('close', () => this.live.delete(socket));
    const nv = `0x${app.nvRange.first.toString(16).padStart(8, '0')}–0x${app.nvRange.last.toString(16).padStart(8, '0')}`;
    log.info({ event: 'raw-open', ...fields, nv }, `raw TPM channel opened (the app's NV indices: ${nv})`);

    const disarm = (): void => {
      clearTimeout(timer);
      waiting = undefined;
    };
    const arm = (what: 'idle' | 'frame'): void => {
      if (waiting === what) return;
      clearTimeout(timer);
      waiting = what;
      const [ms, why] = what === 'frame' ? [this.d.frameTimeoutMs, 'a frame did not arrive in time'] : [this.d.idleTimeoutMs, 'idle'];
      timer = setTimeout(() => {
        log.info({ event: 'raw-timeout', ...fields, why }, `raw channel closed: ${why}`);
        socket.destroy();
      }, ms);
      timer.unref();
    };
    const pump = (): void => {
      if (busy || closed) return;
      let frame: Uint8Array | undefined;
      try {
        frame = reader.next();
      } catch (e) {
        if (!(e instanceof BadFrameSize)) throw e;
        log.info({ event: 'raw-refused', ...fields, rc: `0x${TPM_RC.COMMAND_SIZE.toString(16)}`, reason: e.message }, `refused: ${e.message}; closing`);
        // The stream cannot be followed past it: answer, read no more, close.
        busy = true;
        disarm();
        socket.pause();
        socket.end(errorFrame(TPM_RC.COMMAND_SIZE));
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
      if (!frame) {
        arm(reader.partial > 0 ? 'frame' : 'idle');
        return;
      }
      disarm();
      busy = true;
      if (!this.d.singleTenant && !this.d.tenants().ofRecord(record)) {
        // The tenant was removed (tenants file reloaded): its connection ends, as its /v1 requests would be refused.
        log.info({ event: 'raw-tenant-gone', ...fields }, 'the tenant is no longer configured: closing its raw channel');
        socket.end(errorFrame(TPM_RC.FAILURE));
        return;
      }
      commands++;
      const named = namedHandles(frame); // read once: the budget, the persistent objects and the space all need it
      this.keygen
        .run(record, frame, stop.signal, (timed, remakes) => this.d.queue.submit(tenant.id, 'raw', (job) => timed(() => space.command(job, frame, remakes, named)), { signal: stop.signal }), space.remakesRsa(frame, named))
        .catch((e: unknown) => {
          if (e instanceof ServiceError) {
            // Queue full or the tenant over its share: the TPM's "try again"; the command did not run.
            if (!stop.signal.aborted) log.warn({ event: 'raw-busy', ...fields, err: e.message }, `raw command not run: ${e.message}`);
            return errorFrame(TPM_RC.RETRY);
          }
          // The TPM failed under the command (or a bug): what the context holds is unknown, so it ends here.
          log.error({ event: 'raw-failed', ...fields, err: (e as Error).message }, `raw command failed: ${(e as Error).message}; closing the connection`);
          ended = true;
          return errorFrame(TPM_RC.FAILURE);
        })
        .then((response) => {
          busy = false;
          if (closed) return;
          socket.write(response);
          if (ended) return void socket.end();
          if (socket.isPaused()) socket.resume();
          pump();
        });
    };

    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      // Bytes sent while a command runs are held (one chunk) and reading stops until it is answered;
      // a client that waits for each answer costs no pause and resume per command.
      if (busy) socket.pause();
      else pump();
    });
    socket.once('close', () => {
      closed = true;
      disarm();
      stop.abort(new Error('the raw connection closed'));
      this.open--;
      // As tpmrm on close: the connection's objects and sessions flushed, its saved objects forgotten.
      void this.d.queue
        .submit(tenant.id, 'raw-close', () => space.close(), { lane: 'cleanup' })
        .catch((e: unknown) => {
          space.forget(); // not flushed (the TPM failed): the maintenance sweep sees to what is left
          log.warn({ event: 'raw-close-failed', ...fields, err: (e as Error).message }, 'flushing a closed raw connection failed');
        })
        .then(() => {
          this.spaces.delete(space);
          this.keptIdle.arm(); // it may have kept sessions: flushed once idle too long
          log.info({ event: 'raw-close', ...fields, commands }, 'raw TPM channel closed');
        });
    });
    // The app is done sending: answer what is in flight, then close.
    socket.on('end', () => {
      ended = true;
      if (!busy) socket.end();
    });
    if (head.length > 0) reader.push(head);
    pump();
  }
}
