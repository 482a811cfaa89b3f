// ESLint with typescript-eslint's type-checked rules over the whole project
// (`npm run lint`, part of `npm test`). Run from the repository root.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export default tseslint.config(
  {
    // JavaScript is generated or vendored, except the portal's own modules (web/tsconfig.json checks them).
    ignores: ['node_modules/**', 'tools/**', 'proto/gen/**', 'data/**', 'bench/results/**', 'test-output/**', 'scripts/**', '**/*.js', '**/*.cjs', '**/*.mjs', '!web/*.js'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: root } },
    rules: {
      // fastify plugins and port implementations are `async` to say they return a promise
      // (fastify requires a plugin to be async or call done); an await is not owed.
      '@typescript-eslint/require-await': 'off',
      // `_`-prefixed parameters are the documented way to say "required by the interface, unused here".
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Casting through unknown silences the type checker entirely: production code may not.
      'no-restricted-syntax': [
        'error',
        {
          selector: "TSAsExpression > TSAsExpression.expression[typeAnnotation.type='TSUnknownKeyword']",
          message: '`as unknown as` hides a type error; find a typed way or wrap it in one named, commented function.',
        },
      ],
    },
  },
  {
    // The portal: browser modules, type-checked as JavaScript with JSDoc types against the
    // DOM (web/tsconfig.json, found by the project service), so the type-checked rules
    // apply to it as to the TypeScript. no-undef is off as typescript-eslint advises for
    // type-checked code: the compiler already rejects an undefined name, and knows the
    // browser's globals from its DOM library, which ESLint would need listed by hand.
    // Three of the no-unsafe-* rules are off there: they judge an expression by its type
    // before a JSDoc cast (`/** @type {T} */ (x)`, JavaScript's `x as T`, which the ESTree
    // drops with its parentheses), so a JSON body cast to its type would still count as
    // `any`. Member access and calls on an `any` stay errors.
    files: ['web/**/*.js'],
    rules: {
      'no-undef': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Tests and benchmarks read JSON bodies, CSV lines and child-process messages whose
    // shape is what they assert on: typing each as `any` is the honest type there, so the
    // no-unsafe-* family (which flags every use of an `any`) is off for them, and only there.
    files: ['test/**', 'bench/**', 'devkit/**'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      'no-restricted-syntax': 'off',
      // expect(obj.method).toHaveBeenCalled… and passing methods of fakes are the point there.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
