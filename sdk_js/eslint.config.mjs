// Lint for the browser snippet (plain ES5 in a function expression, browser globals only)
// and for the Shopify custom pixel (Shopify's sandbox globals, no DOM).
const rules = {
  "no-undef": "error",
  "no-unused-vars": ["error", {caughtErrors: "none"}],
  "no-redeclare": "error",
  "no-dupe-keys": "error",
  "no-unreachable": "error",
  "no-shadow-restricted-names": "error",
  "no-eval": "error",
  "no-implied-eval": "error",
  "no-new-func": "error",
};
const shared = {setTimeout: "readonly", clearTimeout: "readonly", crypto: "readonly", fetch: "readonly",
  Blob: "readonly"};

export default [
  {
    files: ["chainlens.js", "risk.js"],
    languageOptions: {
      ecmaVersion: 5,
      sourceType: "script",
      globals: {
        ...shared, window: "readonly", document: "readonly", navigator: "readonly", location: "readonly",
        history: "readonly", localStorage: "readonly",
      },
    },
    rules,
  },
  {
    files: ["shopify.js"],
    languageOptions: {
      ecmaVersion: 2017,
      sourceType: "script",
      globals: {
        ...shared, self: "readonly", analytics: "readonly", browser: "readonly", Promise: "readonly",
        Uint8Array: "readonly",
      },
    },
    rules,
  },
];
