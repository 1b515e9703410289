// Lint for the browser snippet: plain ES5 in a function expression, browser globals only.
export default [
  {
    files: ["chainlens.js"],
    languageOptions: {
      ecmaVersion: 5,
      sourceType: "script",
      globals: {
        window: "readonly", document: "readonly", navigator: "readonly", location: "readonly",
        history: "readonly", crypto: "readonly", fetch: "readonly", setTimeout: "readonly",
        clearTimeout: "readonly", Blob: "readonly",
      },
    },
    rules: {
      "no-undef": "error",
      "no-unused-vars": ["error", {caughtErrors: "none"}],
      "no-redeclare": "error",
      "no-dupe-keys": "error",
      "no-unreachable": "error",
      "no-shadow-restricted-names": "error",
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
    },
  },
];
