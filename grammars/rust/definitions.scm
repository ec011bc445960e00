; Rust definitions. `impl` blocks and `mod` items are scopes: they qualify the names inside them
; (`impl<T> Stack<T> { fn push }` → Stack.push) without being records themselves.
; Attributes (`#[derive(..)]`, `#[test]`) are siblings of the item in the tree, so not part of it.

(struct_item
  name: (type_identifier) @name) @definition.struct

(enum_item
  name: (type_identifier) @name) @definition.enum

(trait_item
  name: (type_identifier) @name) @definition.trait

; A function in an impl or trait body is also a plain function_item; these matches start at the outer
; node, so they come first and win the tie (one node, two patterns) over the pattern below.
; Trait functions count only with a default body (a function_signature_item has none).
(impl_item
  body: (declaration_list
    (function_item
      name: (identifier) @name) @definition.method))

(trait_item
  body: (declaration_list
    (function_item
      name: (identifier) @name) @definition.method))

(function_item
  name: (identifier) @name) @definition.function

; The type an impl is for, without generics or path: `impl<T> fmt::Display for a::Stack<T>` → Stack.
(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]) @scope

(mod_item
  name: (identifier) @name) @scope

; The header a completion sees: top-level `use` and `extern crate`.
(source_file (use_declaration) @import)
(source_file (extern_crate_declaration) @import)
