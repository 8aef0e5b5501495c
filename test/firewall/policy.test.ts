/**
 * docs/FIREWALL.md's policy table against the code: every row marked `forward` has a rule,
 * `service` rows become service operations, and every other code — the `refused` rows, codes
 * the table does not list, vendor codes — is answered TPM_RC_COMMAND_CODE, never forwarded.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TPM_CC, TPM_ST } from '../../src/tpm/constants.js';
import { TPM_RC } from '../../src/tpm/rc.js';
import { COMMANDS } from '../../src/tpm/commands.js';
import { RULES } from '../../src/firewall/rules.js';
import { decide } from '../../src/firewall/decide.js';
import { REPO_ROOT } from '../helpers/shared.js';
import { newConnection, rcOf } from './build.js';

const doc = readFileSync(join(REPO_ROOT, 'docs/FIREWALL.md'), 'utf8');
const rows = [...doc.matchAll(/^\| (0x[0-9A-F]{3}) \| (\w+) \| [^|]+ \| ([AOVN]) \| (forward|service|emulated|refused) \|/gm)].map((m) => ({
  code: Number(m[1]),
  name: m[2]!,
  policy: m[3]!,
  now: m[4]!,
}));

/** A frame with just a header: enough for a code that is refused before anything else is read. */
function bare(code: number, tag: number = TPM_ST.NO_SESSIONS): Uint8Array {
  const f = new Uint8Array(10);
  const v = new DataView(f.buffer);
  v.setUint16(0, tag);
  v.setUint32(2, 10);
  v.setUint32(6, code);
  return f;
}

describe('the policy table', () => {
  it('lists every Part 2 command code 0x11F–0x1A1 once', () => {
    expect(rows.length).toBeGreaterThan(120);
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
    for (const [name, code] of Object.entries(TPM_CC)) expect(rows.find((r) => r.code === code)?.name, name).toBe(name);
  });

  it('forward rows are exactly the rules; service rows are CreatePrimary and EvictControl', () => {
    expect(rows.filter((r) => r.now === 'forward').map((r) => r.code).sort()).toEqual([...RULES.keys()].sort());
    expect(rows.filter((r) => r.now === 'service').map((r) => r.name).sort()).toEqual(['CreatePrimary', 'EvictControl']);
    for (const r of rows.filter((x) => x.now === 'forward')) expect(RULES.get(r.code)!.cmd.name).toBe(r.name);
  });

  it('emulated rows are answered by the firewall with success (SelfTest), never forwarded', () => {
    const emulated = rows.filter((r) => r.now === 'emulated');
    expect(emulated.map((r) => r.name)).toEqual(['SelfTest']);
    for (const yes of [0, 1]) {
      const f = Uint8Array.from([0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, yes]);
      const d = decide(newConnection(), f);
      expect(d.kind === 'reply' && [...d.response]).toEqual([0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]);
    }
    expect(rcOf(decide(newConnection(), Uint8Array.from([0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, 2])))).toBe(TPM_RC.VALUE + 0x40 + 0x100);
  });

  it('never rows are never forwarded: refused with TPM_RC_COMMAND_CODE, with or without sessions', () => {
    const never = rows.filter((r) => r.policy === 'N');
    expect(never.length).toBeGreaterThan(30);
    for (const r of never) {
      expect(r.now).toBe('refused');
      expect(rcOf(decide(newConnection(), bare(r.code))), r.name).toBe(TPM_RC.COMMAND_CODE);
      expect(rcOf(decide(newConnection(), bare(r.code, TPM_ST.SESSIONS))), r.name).toBe(TPM_RC.COMMAND_CODE);
    }
  });

  it('refused rows, unlisted and vendor codes: TPM_RC_COMMAND_CODE (default deny)', () => {
    const listed = new Set(rows.map((r) => r.code));
    const others = [0x0, 0x11e, 0x123, 0x166, 0x175, 0x1a2, 0x1ff, 0x20000000, 0x20000001, 0xffffffff, 0x80000157];
    for (const code of [...rows.filter((r) => r.now === 'refused').map((r) => r.code), ...others]) {
      if (code === 0x123 || code === 0x166 || code === 0x175) expect(listed.has(code)).toBe(false);
      expect(rcOf(decide(newConnection(), bare(code))), `0x${code.toString(16)}`).toBe(TPM_RC.COMMAND_CODE);
    }
  });

  it('the library’s own commands not in the table are refused too (Startup)', () => {
    for (const cmd of COMMANDS.values()) {
      if (!RULES.has(cmd.code) && cmd.code !== TPM_CC.CreatePrimary && cmd.code !== TPM_CC.EvictControl) {
        expect(rcOf(decide(newConnection(), bare(cmd.code))), cmd.name).toBe(TPM_RC.COMMAND_CODE);
      }
    }
  });
});

describe('the firewall room', () => {
  it('imports only itself, the TPM library and node: (no service, no tools, no I/O modules)', () => {
    const dir = join(REPO_ROOT, 'src/firewall');
    const bad: string[] = [];
    for (const f of readdirSync(dir)) {
      for (const m of readFileSync(join(dir, f), 'utf8').matchAll(/from '([^']+)'/g)) {
        const spec = m[1]!;
        if (!(spec.startsWith('./') || spec.startsWith('../tpm/') || spec === 'node:crypto')) bad.push(`${f} → ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
