import { describe, expect, it } from 'vitest';
import { foldKey, projectScope, validateName } from '../src/index.js';

describe('projectScope: the one rule for what a client may write', () => {
  const scope = projectScope(['input', 'output']);

  it.each([
    ['input/a.csv', 'file', undefined, null],
    ['.dsgconfig.yml', 'file', undefined, null],
    ['tasks/a/input/x', 'file', undefined, null], // the task layout: a data dir at any depth
    ['input', 'file', undefined, /outside the data directories/], // a FILE named input is not a data dir
    [
      'src/x.py',
      'file',
      undefined,
      /outside the data directories \(no input, output in its path\); data_dirs with "src" in \.dsgconfig\.yml would include it/,
    ],
    ['tasks/clean/frozen/d.parquet', 'file', undefined, /data_dirs with "frozen" in/], // the config change that takes it in
    [
      'Makefile',
      'file',
      undefined,
      /outside the data directories .*no data_dirs can include a file at the project root/,
    ],
    ['.git/config', 'file', undefined, /hidden name/],
    ['input/sub/.git/config', 'file', undefined, /hidden name/],
    ['input/.DSG/x', 'file', undefined, /hidden name/],
    ['input/.gitkeep', 'file', undefined, /hidden name/],
    ['tasks/a/input/l', 'link', '../../b/output/r.csv', null],
    ['input/l', 'link', 'a.csv', null],
    ['input/l', 'link', './a.csv', null],
    ['input/l', 'link', '../output/r.csv', null],
    ['input/l', 'link', '../output', null],
    ['input/l', 'link', '../.git', /hidden name ".git"/],
    ['input/l', 'link', '../Makefile', /outside the data directories/],
    ['input/l', 'link', 'l1/../x', /"\.\." after a name/],
    ['input/l', 'link', '../../etc', /escapes the project/],
    ['input/l', 'link', '/etc/passwd', /absolute/],
    ['.dsgconfig.yml', 'link', 'input/a', /cannot be a symlink/],
  ] as const)('%s (%s -> %s)', (p, type, reference, want) => {
    const why = scope.problem(type === 'link' ? { path: p, type, reference } : { path: p, type });
    if (want === null) expect(why).toBeNull();
    else expect(why).toMatch(want);
  });

  it('refuses data dirs that are hidden or unsafe, whoever configured them', () => {
    for (const bad of ['.git', '.dsg', '.DSG', 'input/x', '..', '', 'a|b'])
      expect(() => projectScope([bad]), bad).toThrow(/data directory/);
  });

  it('the outermost data directory holds a path', () => {
    expect(scope.dataDirOf('tasks/clean/input/output/x')).toBe('tasks/clean/input');
    expect(scope.dataDirOf('.dsgconfig.yml')).toBe('');
  });

  it('folds case and normalization the way macOS and Windows do', () => {
    expect(foldKey('input/Re\u0301sume\u0301.CSV')).toBe(foldKey('input/résumé.csv'));
  });
});

describe('name rules for new names, as the original', () => {
  it.each([
    ['input/del\u007f.csv', /U\+007F/],
    ['input/c1\u0085.csv', /U\+0085/],
    ['input/soft\u00adhyphen.csv', /U\+00AD/],
    ['input/b\ufeffom.csv', /U\+FEFF/],
    ['input/private\ue000.csv', /U\+E000/],
    ['input/unassigned\u0378.csv', /U\+0378/],
    ['C:', /drive/],
    ['C:/', /drive/],
    ['C:/x', /drive/],
  ])('refuses %j', (p, why) => expect(validateName(p)).toMatch(why));
  it.each(['c:notes.csv', 'input/c:notes.csv', 'input/résumé.csv', 'input/日本語.csv', 'input/emoji😀.csv'])(
    'accepts %j',
    (p) => expect(validateName(p)).toBeNull(),
  );
});
