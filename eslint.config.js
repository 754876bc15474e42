// ESLint for the pages' browser modules (static/js); `make lint` runs it.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["static/js/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.browser },
    rules: {
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-shadow": "error",
      "no-param-reassign": "error",
      curly: ["error", "multi-line"],
      // No page-wide mutable state: a module's top level holds constants, functions and classes;
      // what a page holds lives in the objects its entry module makes.
      "no-restricted-syntax": [
        "error",
        { selector: "Program > VariableDeclaration[kind='let']", message: "No module-level mutable state (let)." },
        { selector: "Program > VariableDeclaration[kind='var']", message: "No module-level mutable state (var)." },
        { selector: "Program > ExportNamedDeclaration > VariableDeclaration[kind='let']", message: "No module-level mutable state (let)." },
      ],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
