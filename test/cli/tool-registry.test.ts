/**
 * One list of tools (src/service/protocol/tools.ts): the multi-call binary's definitions, the bin
 * files, package.json's bins and deploy/install.sh must all name exactly those tools, so adding
 * or renaming one cannot leave an installer or a bin behind.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOOL_DEFS } from '../../src/cli/tools/index.js';
import { TOOL_NAMES, TOOLS_PREFIX, toolCommand } from '../../src/service/protocol/tools.js';
import { REPO_ROOT } from '../helpers/shared.js';

const commands = TOOL_NAMES.map(toolCommand).sort();

describe('the tool list', () => {
  it('each definition is named after its entry', () => {
    expect(Object.keys(TOOL_DEFS).sort()).toEqual([...TOOL_NAMES].sort());
    for (const n of TOOL_NAMES) expect(TOOL_DEFS[n].name).toBe(toolCommand(n));
  });

  it('each tool has its bin file', () => {
    for (const c of commands) expect(existsSync(join(REPO_ROOT, 'src/bin', `${c}.ts`)), c).toBe(true);
  });

  it("package.json's bins are exactly the tools (plus the service and the decoder)", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const tools = Object.keys(pkg.bin).filter((b) => b.startsWith(TOOLS_PREFIX)).sort();
    expect(tools).toEqual(commands);
    for (const c of commands) expect(pkg.bin[c]).toBe(`./dist/bin/${c}.cjs`);
  });

  it('deploy/install.sh installs exactly the tools', () => {
    const text = readFileSync(join(REPO_ROOT, 'deploy/install.sh'), 'utf8');
    const line = /^TOOLS="([^"]*)"$/m.exec(text);
    expect(line, 'install.sh has a TOOLS="…" line').not.toBeNull();
    expect(line![1]!.split(/\s+/).sort()).toEqual(commands);
  });
});
