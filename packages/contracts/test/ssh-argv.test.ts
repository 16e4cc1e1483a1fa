import { describe, expect, it } from 'vitest';
import { ValidationError, sshArgv } from '../src/index.js';

describe('sshArgv', () => {
  it('batch mode first, then port, key and options in the order given', () => {
    expect(sshArgv()).toEqual(['-o', 'BatchMode=yes']);
    expect(sshArgv({ port: 2222, key: '/k/id', options: ['A=1', 'B=2'] })).toEqual([
      '-o',
      'BatchMode=yes',
      '-p',
      '2222',
      '-i',
      '/k/id',
      '-o',
      'A=1',
      '-o',
      'B=2',
    ]);
  });

  it.each([0, 65536, 22.5, Number.NaN])('refuses port %s', (port) => {
    expect(() => sshArgv({ port })).toThrow(ValidationError);
    expect(() => sshArgv({ port })).toThrow(/refused ssh port/);
  });
});
