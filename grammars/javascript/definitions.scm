; JavaScript definitions. An `export` is matched both bare and with its declaration; codedouble keeps the
; larger node, so `export` / `export default` belong to the definition, named by what it declares.

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(class_declaration
  name: (identifier) @name) @definition.class

; Class and object-literal methods alike (getters, setters, `#private`, `[computed]` names included).
(method_definition
  name: (_) @name) @definition.method

; A class field holding a function (`onClick = () => {}`) is a method in all but syntax.
(field_definition
  property: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.method

; `{ load: async (id) => {} }`: an object-literal method written as a property.
(pair
  key: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.method

; `const f = () => {}` is named by its variable. The whole statement is the definition so `const` is in the
; signature, but only for a lone declarator: `const a = () => 1, b = () => 2` would give both one node,
; so those fall back to the declarator alone.
(lexical_declaration
  .
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])
  .) @definition.function

(variable_declaration
  .
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)])
  .) @definition.function

(variable_declarator
  name: (identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function

; `export` / `export default` around a declaration.
(export_statement
  declaration: [
    (function_declaration
      name: (identifier) @name)
    (generator_function_declaration
      name: (identifier) @name)
  ]) @definition.function

(export_statement
  declaration: (class_declaration
    name: (identifier) @name)) @definition.class

(export_statement
  declaration: [
    (lexical_declaration
      .
      (variable_declarator
        name: (identifier) @name
        value: [(arrow_function) (function_expression) (generator_function)])
      .)
    (variable_declaration
      .
      (variable_declarator
        name: (identifier) @name
        value: [(arrow_function) (function_expression) (generator_function)])
      .)
  ]) @definition.function

; An object literal bound to a name qualifies the methods written in it: `const api = { load() {} }` → api.load.
(variable_declarator
  name: (identifier) @name
  value: (object)) @scope

; The header a completion sees: ES imports and top-level CommonJS `const x = require("x")`.
(program (import_statement) @import)

(program
  (lexical_declaration
    (variable_declarator
      value: (call_expression
        function: (identifier) @_require
        (#eq? @_require "require")))) @import)

(program
  (variable_declaration
    (variable_declarator
      value: (call_expression
        function: (identifier) @_require
        (#eq? @_require "require")))) @import)
