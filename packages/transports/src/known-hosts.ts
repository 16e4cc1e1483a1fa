import { createHash, createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TransportError } from '@dsg/contracts';

// Hand-written on purpose: the npm parsers for known_hosts are unmaintained
// and none handles hashed entries (|1|salt|hmac), [host]:port names,
// negated patterns and @revoked markers together. The format is small
// (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"); this covers all of it except
// @cert-authority lines, which are skipped (dsg does not do host certificates).

export interface KnownHostEntry {
  marker: '' | '@revoked' | '@cert-authority';
  hosts: string;
  keyType: string;
  /** the key blob, as sent on the wire */
  key: Buffer;
  line: number;
}

/** The name known_hosts uses for host:port. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** SHA256 fingerprint as OpenSSH prints it: base64 without padding. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type string inside a wire-format key blob (uint32 length + name). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const f = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = '';
    if (f[0] === '@revoked' || f[0] === '@cert-authority') marker = f.shift() as KnownHostEntry['marker'];
    if (f.length < 3) return;
    const key = Buffer.from(f[2]!, 'base64');
    if (key.length === 0) return;
    out.push({ marker, hosts: f[0]!, keyType: f[1]!, key, line: i + 1 });
  });
  return out;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return re.test(name);
}

/** Whether a host field (comma-separated patterns, or one hashed name) names `name`. */
export function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const p of field.split(',')) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

export type HostKeyVerdict = { ok: true } | { ok: false; error: TransportError };

/** The entries of `file` that apply to host:port (no @cert-authority lines); a missing file has none. */
async function entriesFor(file: string, name: string): Promise<KnownHostEntry[]> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return parseKnownHosts(text).filter((e) => e.marker !== '@cert-authority' && hostsFieldMatches(e.hosts, name));
}

/** The key type of an entry: the one inside its key blob (what the server sends), else the type field. */
function entryType(e: KnownHostEntry): string {
  const t = keyTypeOf(e.key);
  return t === 'unknown' || t === '' ? e.keyType : t;
}

/**
 * The server host key algorithms ssh2 offers by default, most preferred
 * first (ssh2 1.x, lib/protocol/constants.js DEFAULT_SERVER_HOST_KEY).
 */
export const DEFAULT_HOST_KEY_ALGORITHMS: readonly string[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** The key type a host key algorithm uses (the RSA SHA-2 signature algorithms use ssh-rsa keys). */
export function keyTypeOfAlgorithm(algorithm: string): string {
  return algorithm === 'rsa-sha2-256' || algorithm === 'rsa-sha2-512' ? 'ssh-rsa' : algorithm;
}

/**
 * `algorithms` with those whose key type is in `knownTypes` moved to the
 * front, each group keeping its order: what OpenSSH does with
 * HostKeyAlgorithms when known_hosts already has keys for the host, so a
 * server with several host keys shows the one we know instead of its
 * preferred one (which would be refused as unknown).
 */
export function orderHostKeyAlgorithms(
  knownTypes: Iterable<string>,
  algorithms: readonly string[] = DEFAULT_HOST_KEY_ALGORITHMS,
): string[] {
  const known = new Set(knownTypes);
  const first = algorithms.filter((a) => known.has(keyTypeOfAlgorithm(a)));
  return [...first, ...algorithms.filter((a) => !known.has(keyTypeOfAlgorithm(a)))];
}

/** The key types known_hosts holds (not @revoked) for host:port, in file order, each once. */
export async function knownHostKeyTypes(options: { file: string; host: string; port: number }): Promise<string[]> {
  const entries = await entriesFor(options.file, knownHostName(options.host, options.port));
  return [...new Set(entries.filter((e) => e.marker === '').map(entryType))];
}

/**
 * Check the key a server offered against a known_hosts file. Unknown,
 * changed and revoked keys are refused with the fingerprint and the command
 * that fixes it; there is no auto-accept. Only a key of the same type can
 * make a key "changed": a server showing a type known_hosts has no key of
 * (because it has no key of the known types) is an unknown host.
 */
export async function verifyHostKey(options: {
  file: string;
  host: string;
  port: number;
  key: Buffer;
}): Promise<HostKeyVerdict> {
  const name = knownHostName(options.host, options.port);
  const fp = fingerprint(options.key);
  const type = keyTypeOf(options.key);
  const entries = await entriesFor(options.file, name);
  const scan = `ssh-keyscan ${options.port === 22 ? '' : `-p ${options.port} `}${options.host} >> ${options.file}`;
  if (entries.some((e) => e.marker === '@revoked' && e.key.equals(options.key))) {
    return {
      ok: false,
      error: new TransportError(
        `the host key of ${name} (${type} ${fp}) is marked @revoked in ${options.file}; refusing to connect`,
        { recoveryHint: 'Ask the server administrator for the current host key.' },
      ),
    };
  }
  const plain = entries.filter((e) => e.marker === '');
  if (plain.some((e) => e.key.equals(options.key))) return { ok: true };
  const sameType = plain.filter((e) => entryType(e) === type);
  if (sameType.length === 0) {
    const others = [...new Set(plain.map(entryType))];
    const also = others.length
      ? ` ${options.file} has only ${others.join(', ')} key(s) for it (line ${plain.map((e) => e.line).join(', ')}), and the server offered none of those types`
      : '';
    return {
      ok: false,
      error: new TransportError(
        `the host key of ${name} is not known (${type} ${fp} is not in ${options.file});${also ? `${also};` : ''} refusing to connect`,
        {
          recoveryHint: `Check that ${fp} is the server's fingerprint (ask its administrator: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it: ${scan}`,
        },
      ),
    };
  }
  const lines = sameType.map((e) => e.line).join(', ');
  return {
    ok: false,
    error: new TransportError(
      `HOST KEY CHANGED for ${name}: the server offered ${type} ${fp}, but ${options.file} (line ${lines}) has a different ${type} key; refusing to connect (someone may be intercepting the connection)`,
      {
        recoveryHint: `If the server was reinstalled and ${fp} is its new fingerprint, remove the old key with \`ssh-keygen -R '${name}' -f ${options.file}\` and add the new one: ${scan}`,
      },
    ),
  };
}
