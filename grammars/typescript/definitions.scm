; TypeScript and TSX definitions (one file for both grammars: use only node types they share).
; An `export` is matched both bare and with its declaration; codedouble keeps the larger node, so `export`
; and the decorators written before it belong to the definition, named by what it declares.
; Type aliases, overload signatures and interface members are declarations without bodies: not records.

(function_declaration
  name: (identifier) @name) @definition.function

(generator_function_declaration
  name: (identifier) @name) @definition.function

(class_declaration
  name: (type_identifier) @name) @definition.class

(abstract_class_declaration
  name: (type_identifier) @name) @definition.class

(interface_declaration
  name: (type_identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

; Class and object-literal methods alike (constructor, accessors, `#private`, `[computed]` names included).
(method_definition
  name: (_) @name) @definition.method

; A class field holding a function (`onClick = (e: Event) => {}`) is a method in all but syntax.
(public_field_definition
  name: (property_identifier) @name
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.method

; `{ load: async (id: string) => {} }`: an object-literal method written as a property.
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
  declaration: [
    (class_declaration
      name: (type_identifier) @name)
    (abstract_class_declaration
      name: (type_identifier) @name)
  ]) @definition.class

(export_statement
  declaration: (interface_declaration
    name: (type_identifier) @name)) @definition.interface

(export_statement
  declaration: (enum_declaration
    name: (identifier) @name)) @definition.enum

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

; `namespace A.B { ... }` qualifies what it holds without being a record itself.
(internal_module
  name: (_) @name) @scope

; An object literal bound to a name qualifies the methods written in it: `const api = { load() {} }` → api.load.
(variable_declarator
  name: (identifier) @name
  value: (object)) @scope

; The header a completion sees: imports (`import x = require("x")` included) and top-level CommonJS requires.
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
