// go build's error output parsed into diagnostics, every line kept with the diagnostic it belongs
// to. The first two inputs are go 1.26's own output, captured from real builds of the sources in
// test/integration/dev-unhappy-ui.test.ts (which also runs them through the real CLI); the third
// is written the way go prints a `note:` line and several packages' headers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDiagnostics } from '../../src/go/build.js';

describe('parseDiagnostics', () => {
  it('keeps have/want notes under their diagnostic', () => {
    const stderr = [
      '# example.com/svc',
      './main.go:13:2: not enough arguments in call to greet',
      '\thave ()',
      '\twant (string)',
      './main.go:14:13: too many arguments in call to greet',
      '\thave (string, string)',
      '\twant (string)',
      './main.go:15:2: undefined: undefinedOne',
      '',
    ].join('\n');
    assert.deepEqual(parseDiagnostics(stderr), [
      { file: 'main.go', line: 13, column: 2, message: 'not enough arguments in call to greet', notes: ['have ()', 'want (string)'] },
      { file: 'main.go', line: 14, column: 13, message: 'too many arguments in call to greet', notes: ['have (string, string)', 'want (string)'] },
      { file: 'main.go', line: 15, column: 2, message: 'undefined: undefinedOne' },
    ]);
  });

  it('keeps the go get fix line of a missing module', () => {
    const stderr = 'main.go:8:2: no required module provides package example.com/nope/missing; to add it:\n\tgo get example.com/nope/missing\n';
    assert.deepEqual(parseDiagnostics(stderr), [
      { file: 'main.go', line: 8, column: 2, message: 'no required module provides package example.com/nope/missing; to add it:', notes: ['go get example.com/nope/missing'] },
    ]);
  });

  it("takes go's note: lines as notes, and a package header ends the notes of the package before", () => {
    const stderr = [
      '# example.com/svc/internal/a',
      'internal/a/a.go:3:9: undefined: x',
      'note: module requires Go 1.27',
      '# example.com/svc',
      '    an indented line of another package',
      './main.go:4:2: undefined: y',
    ].join('\n');
    assert.deepEqual(parseDiagnostics(stderr), [
      { file: 'internal/a/a.go', line: 3, column: 9, message: 'undefined: x', notes: ['note: module requires Go 1.27'] },
      { file: 'main.go', line: 4, column: 2, message: 'undefined: y' },
    ]);
  });
});
