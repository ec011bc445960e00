; Java definitions. Nested types are definitions too, so their members qualify as Outer.Inner.method.
; Annotations and modifiers sit inside the declaration node, so they belong to the definition.

(class_declaration
  name: (identifier) @name) @definition.class

(interface_declaration
  name: (identifier) @name) @definition.interface

(enum_declaration
  name: (identifier) @name) @definition.enum

(record_declaration
  name: (identifier) @name) @definition.record

; Only methods with a body: abstract and interface methods are signatures, as in the other languages.
(method_declaration
  name: (identifier) @name
  body: (block)) @definition.method

(constructor_declaration
  name: (identifier) @name) @definition.constructor

; A record's `Point { ... }` validation block.
(compact_constructor_declaration
  name: (identifier) @name) @definition.constructor

; The header a completion sees: the package and imports.
(program (package_declaration) @import)
(program (import_declaration) @import)
