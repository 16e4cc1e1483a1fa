// Shared flat config: typescript-eslint with type-aware rules. A package's
// eslint.config.js is `export default dsg(import.meta.dirname)`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * @param {string} tsconfigRootDir the package directory
 * @param {{ forbiddenImports?: string[] }} [opts] packages this one may not import
 */
export default function dsg(tsconfigRootDir, opts = {}) {
  const forbidden = opts.forbiddenImports ?? [];
  return tseslint.config(
    { ignores: ['dist/**', 'coverage/**', 'test-results/**', '**/*.js', '**/*.mjs', 'vitest.config.ts'] },
    js.configs.recommended,
    ...tseslint.configs.recommendedTypeChecked,
    {
      languageOptions: {
        parserOptions: {
          project: ['./tsconfig.check.json'],
          tsconfigRootDir,
        },
      },
      rules: {
        '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
        '@typescript-eslint/no-floating-promises': 'error',
        '@typescript-eslint/no-misused-promises': 'error',
        '@typescript-eslint/consistent-type-imports': 'error',
        '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
        'no-restricted-imports': forbidden.length
          ? [
              'error',
              {
                patterns: forbidden.map((p) => ({
                  group: [p, `${p}/*`],
                  message: `this package may not import ${p} (see docs/ARCHITECTURE.md §1)`,
                })),
              },
            ]
          : 'off',
      },
    },
    {
      files: ['test/**/*.ts'],
      rules: {
        '@typescript-eslint/no-non-null-assertion': 'off',
        '@typescript-eslint/no-unsafe-assignment': 'off',
        '@typescript-eslint/no-unsafe-member-access': 'off',
      },
    },
  );
}
