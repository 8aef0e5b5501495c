// Applies the parts of cloud-init user-data that `eve-tpm-service tenant add` uses, in the order
// and the way cloud-init does, for a machine without cloud-init (the qemu-tpm guest, a test's
// private mount namespace): write_files (path, content, encoding b64/gz+b64/text, permissions as
// an octal string, owner user:group, append) and then runcmd (a list is an argv run without a shell, a
// string is given to sh). Input: the user-data already parsed from YAML to JSON (by PyYAML's
// safe_load on the host, what cloud-init itself uses). Prints one line per step; exits non-zero
// if any runcmd entry failed (cloud-init logs that as a failed module).
//   node apply-user-data.mjs USER-DATA.json
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync } from 'node:zlib';

const doc = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const known = new Set(['write_files', 'runcmd', 'packages']);
for (const k of Object.keys(doc)) if (!known.has(k)) throw new Error(`user-data key ${k} is not handled here`);
if (doc.packages?.length) throw new Error(`user-data wants packages (${doc.packages.join(', ')}): not an offline install`);

for (const f of doc.write_files ?? []) {
  let data;
  switch (f.encoding ?? 'text/plain') {
    case 'gz+b64':
    case 'gzip+base64':
    case 'gz+base64':
    case 'gzip+b64':
      data = gunzipSync(Buffer.from(f.content, 'base64'));
      break;
    case 'b64':
    case 'base64':
      data = Buffer.from(f.content, 'base64');
      break;
    case 'text/plain':
      data = Buffer.from(f.content ?? '', 'utf8');
      break;
    default:
      throw new Error(`${f.path}: encoding ${f.encoding} not handled here`);
  }
  mkdirSync(dirname(f.path), { recursive: true });
  // append: true adds to what the image has (/etc/environment).
  (f.append ? appendFileSync : writeFileSync)(f.path, data);
  // cloud-init's default is 0644, owner root:root.
  chmodSync(f.path, Number.parseInt(f.permissions ?? '0644', 8));
  if (f.owner) execFileSync('chown', [f.owner, f.path]);
  console.log(`write_files: ${f.path} (${data.length} bytes, ${f.permissions ?? '0644'})`);
}

let failed = 0;
for (const c of doc.runcmd ?? []) {
  const [cmd, ...args] = Array.isArray(c) ? c.map(String) : ['sh', '-c', c];
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  console.log(`runcmd: ${JSON.stringify(c)} -> ${r.status ?? r.signal ?? r.error?.message}`);
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
