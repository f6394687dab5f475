// One style for the JavaScript and TypeScript of client/, tests/ and scripts/
// (which files: .prettierignore). Chosen to change as little as possible: the
// client and the test servers were already written this way.
export default {
  printWidth: 120,
  semi: true,
  singleQuote: true,
  trailingComma: 'all',
  overrides: [
    {
      // The client runs in mini-program JavaScript engines that predate
      // ES2017: no trailing commas in function parameters or calls.
      files: ['client/index.js', 'client/lib/*.js'],
      options: { trailingComma: 'es5' },
    },
  ],
};
