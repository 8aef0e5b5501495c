/**
 * Group 3 — marshalling: our codecs against TSS.JS, in the same process, on the same frames
 * (recorded from tpm2-tss talking to swtpm: /work/shared/vectors/tpm2-tss-swtpm.json).
 *
 * For each frame, three operations per library: encode (typed value → bytes), decode
 * (bytes → typed value) and the round trip encode+decode (the headline figure). Before
 * timing, both encoders must reproduce the recorded bytes exactly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  CreatePrimary,
  ReadPublic,
  Sign,
  type CommandDescriptor,
} from '../../../src/tpm/index.js';
import { marshalCommand, marshalResponse, unmarshalCommand, unmarshalResponse } from '../../../src/tpm/entries/wire.js';
import { interpreted } from '../../../src/tpm/wire/compile.js';
import { x, perSec, type Ctx, type Group } from '../context.js';
import { median, ratio } from '../stats.js';
import { TssHarness, loadTssJs } from '../tssjs.js';

interface Vector {
  name: string;
  commandCode: string;
  command: string;
  response: string;
}

type AnyCmd = CommandDescriptor<any, any, any, any>;

interface Case {
  id: string;
  frame: Uint8Array;
  ours: { encode: () => Uint8Array; decode: () => unknown };
  /** Ours with the interpreted (reference) codecs for the parameters, for the compiled codecs' gain. */
  interp: { encode: () => Uint8Array; decode: () => unknown };
  tss: { encode: () => Uint8Array; decode: () => unknown };
}

/** The same command with its parameter and response codecs interpreted (compile.ts's reference). */
const interpretedCmd = (cmd: AnyCmd): AnyCmd => ({ ...cmd, params: interpreted(cmd.params), response: interpreted(cmd.response) });

export function sharedDir(root: string): string {
  return process.env.EVE_SHARED_DIR ?? resolve(root, '../shared');
}

export function loadVectors(root: string): Vector[] {
  const file = resolve(sharedDir(root), 'vectors', 'tpm2-tss-swtpm.json');
  if (!existsSync(file)) throw new Error(`reference vectors not found at ${file} (set EVE_SHARED_DIR)`);
  return (JSON.parse(readFileSync(file, 'utf8')) as { vectors: Vector[] }).vectors;
}

const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** unmarshalResponse's option for a frame the caller owns (the executor's case). */
const OWNED = { owned: true };

/** Keeps results alive so the JIT cannot drop the work. */
let sink: unknown;

function buildCases(root: string): { cases: Case[]; tssVersion: string } {
  const vectors = loadVectors(root);
  const pick = (prefix: string): Vector => {
    const v = vectors.find((x) => x.name.startsWith(prefix));
    if (!v) throw new Error(`no vector named ${prefix}…`);
    return v;
  };
  const { tss, version } = loadTssJs(root);
  const h = new TssHarness(tss);

  const commandCase = (id: string, v: Vector, cmd: AnyCmd, Req: any, handleField: string): Case => {
    const frame = unhex(v.command);
    const d = unmarshalCommand(cmd, frame);
    const input = { ...d.handles, ...d.params } as never;
    const auths = Object.fromEntries(cmd.handles.filter((x) => x.auth === 'auth').map((x, i) => [x.name, d.auths[i]!]));
    const t = h.decodeCommand(frame, Req);
    t.req[handleField] = t.handles[0];
    const session = t.sessions[0] ? h.sessionOf(t.sessions[0]) : undefined;
    const ic = interpretedCmd(cmd);
    // The frame builder of TSS.JS keeps the session object only for one call: pass it every time.
    return {
      id,
      frame,
      ours: { encode: () => marshalCommand(cmd, input, auths), decode: () => unmarshalCommand(cmd, frame) },
      interp: { encode: () => marshalCommand(ic, input, auths), decode: () => unmarshalCommand(ic, frame) },
      tss: {
        encode: () => h.encodeCommand(cmd.code, t.req, session ?? h.passwordSession()),
        decode: () => h.decodeCommand(frame, Req),
      },
    };
  };
  const responseCase = (id: string, v: Vector, cmd: AnyCmd, Resp: any): Case => {
    const frame = unhex(v.response);
    const nSessions = cmd.handles.filter((x) => x.auth === 'auth').length;
    const d = unmarshalResponse(cmd, frame, nSessions);
    const t = h.decodeResponse(frame, Resp, nSessions > 0, nSessions);
    const ic = interpretedCmd(cmd);
    return {
      id,
      frame,
      // Decoded as the executor decodes a response (Transport.freshResponses): the frame is the
      // caller's, byte fields are views into it — as TSS.JS's are (Buffer slices).
      ours: { encode: () => marshalResponse(cmd, d.output, d.auths), decode: () => unmarshalResponse(cmd, frame, nSessions, OWNED) },
      interp: { encode: () => marshalResponse(ic, d.output, d.auths), decode: () => unmarshalResponse(ic, frame, nSessions, OWNED) },
      tss: { encode: () => h.encodeResponse(t.resp, t.auths), decode: () => h.decodeResponse(frame, Resp, nSessions > 0, nSessions) },
    };
  };

  const cp = pick('CreatePrimary(owner SRK');
  const sg = pick('Sign(AK, ticket)');
  const rp = pick('ReadPublic(0x81010000)');
  const cases = [
    commandCase('CreatePrimary command', cp, CreatePrimary, tss.TPM2_CreatePrimary_REQUEST, 'primaryHandle'),
    responseCase('CreatePrimary response', cp, CreatePrimary, tss.CreatePrimaryResponse),
    commandCase('Sign command', sg, Sign, tss.TPM2_Sign_REQUEST, 'keyHandle'),
    responseCase('Sign response', sg, Sign, tss.SignResponse),
    responseCase('ReadPublic response', rp, ReadPublic, tss.ReadPublicResponse),
  ];
  // Both encoders must give the recorded bytes before anything is timed.
  for (const c of cases) {
    for (const [who, impl] of [['ours', c.ours], ['ours interpreted', c.interp], ['TSS.JS', c.tss]] as const) {
      const out = impl.encode();
      if (!same(out, c.frame)) {
        throw new Error(`${who} does not reproduce the recorded ${c.id} (${out.length} vs ${c.frame.length} bytes)`);
      }
      impl.decode();
    }
  }
  return { cases, tssVersion: version };
}

/** Operations per second of `fn`: `samples` timed batches of about `sampleMs` each. */
function calibrate(fn: () => unknown, targetMs: number): number {
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink = fn();
    const dt = performance.now() - t0;
    if (dt >= targetMs / 4) return Math.max(1, Math.round((n * targetMs) / dt));
    n *= 2;
  }
}

/**
 * Operations per CPU-second of this process over `n` calls. CPU time, not wall time: on a
 * shared machine other processes steal whole time slices from a batch, which wall time would
 * charge to whichever library happened to run. Before each batch the process idles a few ms,
 * so V8's background work from the previous batch (concurrent marking of its garbage, JIT
 * compilation) finishes outside the measurement instead of being charged to the next one.
 */
async function batchRate(fn: () => unknown, n: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 5));
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink = fn();
  const c = process.cpuUsage(c0);
  return (n * 1e6) / Math.max(1, c.user + c.system);
}

type Op = 'encode' | 'decode' | 'roundtrip';
const OPS: Op[] = ['roundtrip', 'encode', 'decode'];

export const marshalGroup: Group = {
  id: 3,
  title: 'Marshalling: ours vs TSS.JS (ops/s, same process, same frames)',
  async run(ctx: Ctx) {
    const { cases, tssVersion } = buildCases(ctx.root);
    const sampleMs = ctx.smoke ? 4 : 40;
    const reps = ctx.smoke ? 3 : 11;
    const warmMs = ctx.smoke ? 30 : 300;
    const data: Record<string, unknown> = { tssVersion, sampleMs, reps, node: process.version };
    const rows: (string | number)[][] = [];
    /** `ours` is the default (compiled codecs); `interpreted` the reference codecs; `gain` = ours ÷ interpreted. */
    type Figures = { ours: number; tss: number; ratio: number; interpreted: number; gain: number };
    const results: Record<string, Record<Op, Figures>> = {};

    for (const c of cases) {
      results[c.id] = {} as Record<Op, Figures>;
      for (const op of OPS) {
        const mk = (impl: Case['ours']): (() => unknown) =>
          op === 'encode'
            ? impl.encode
            : op === 'decode'
              ? impl.decode
              : () => {
                  sink = impl.encode();
                  return impl.decode();
                };
        // ours, ours interpreted, TSS.JS: warmed up (JIT), then batches in rotating order.
        const fns = [mk(c.ours), mk(c.interp), mk(c.tss)];
        for (const f of fns) {
          const end = performance.now() + warmMs;
          while (performance.now() < end) sink = f();
        }
        const counts = fns.map((f) => calibrate(f, sampleMs));
        const rates: number[][] = [[], [], []];
        for (let i = 0; i < reps; i++) {
          for (let j = 0; j < 3; j++) {
            const k = (i + j) % 3;
            rates[k]!.push(await batchRate(fns[k]!, counts[k]!));
          }
        }
        const [ours, interp, tss] = rates.map(median) as [number, number, number];
        results[c.id]![op] = { ours, tss, ratio: ratio(ours, tss), interpreted: interp, gain: ratio(ours, interp) };
      }
      const r = results[c.id]!;
      rows.push([
        c.id,
        `${c.frame.length}`,
        perSec(r.roundtrip.ours),
        perSec(r.roundtrip.tss),
        x(r.roundtrip.ratio, 2),
        x(r.encode.ratio, 2),
        x(r.decode.ratio, 2),
        perSec(r.roundtrip.interpreted),
        x(r.roundtrip.gain, 2),
      ]);
      ctx.log(`marshal ${c.id}: ours ${perSec(r.roundtrip.ours)}/s, TSS.JS ${perSec(r.roundtrip.tss)}/s`);
    }
    data.results = results;
    void sink;
    const slower = Object.entries(results).filter(([, r]) => r.roundtrip.ratio < 1);
    return {
      tables: [
        {
          columns: ['frame', 'bytes', 'ours enc+dec/s', 'TSS.JS enc+dec/s', 'ours÷TSS.JS', 'encode ÷', 'decode ÷', 'interpreted enc+dec/s', 'compiled÷interpreted'],
          rows,
        },
      ],
      notes: [
        `TSS.JS ${tssVersion}; ratios > 1 mean ours is faster. Medians of ${reps} interleaved batches of ~${sampleMs} ms; rates are per CPU-second of this process (immune to other processes on a shared machine), each batch after a short idle gap so that V8's background work from the previous one is not charged to it.`,
        'Responses are decoded as the executor decodes them (its Transport promises fresh frames: byte fields are views into the frame, as TSS.JS\'s Buffer slices are); unmarshalResponse without { owned: true } copies them instead. Frames and copies of more than 64 bytes come from a shared slab (src/tpm/wire/slab.ts).',
        'Ours validates more than TSS.JS (strict sizes, union selectors, bounds, trailing bytes, typed errors with field paths); TSS.JS trusts the frame.',
        slower.length === 0
          ? 'Ours is at least as fast as TSS.JS on every frame.'
          : `Slower than TSS.JS on: ${slower.map(([k, r]) => `${k} (${x(r.roundtrip.ratio, 2)})`).join(', ')}.`,
        'Limit: pure CPU (V8 JIT, allocation, GC); microseconds per frame either way — a TPM command takes milliseconds.',
        'Ours = the compiled codecs (src/tpm/wire/compile.ts: straight-line code generated once per structure, every check kept); interpreted = the same frames with the command\'s parameter and response codecs in their reference (interpreted) form.',
      ],
      data,
    };
  },
};
