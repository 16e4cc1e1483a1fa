/**
 * Test-only fault points. `DSG_FAULT=<point>` makes `faultPoint(point)` kill
 * the process (SIGKILL, like a crash) the first time that point is reached;
 * `DSG_FAULT=<point>:throw` throws instead; `DSG_FAULT=<point>:sigint` sends
 * the process a SIGINT (a Ctrl-C at that point) and carries on until it is
 * handled. Compiled in, inert unless set.
 * Point names are `<component>.<step>`, e.g. `zfs.commit.after-promote`.
 */
export class InjectedFault extends Error {
  constructor(readonly point: string) {
    super(`injected fault at ${point}`);
    this.name = 'InjectedFault';
  }
}

export function faultPoint(point: string): void {
  const spec = process.env['DSG_FAULT'];
  if (!spec) return;
  for (const item of spec.split(',')) {
    const [name, mode] = item.split(':');
    if (name !== point) continue;
    if (mode === 'throw') throw new InjectedFault(point);
    process.kill(process.pid, mode === 'sigint' ? 'SIGINT' : 'SIGKILL');
  }
}
