; Go definitions. Methods are qualified by their receiver's type, pointer or not, generic or not:
; `func (s *Stack[T]) Push` → Stack.Push.

(function_declaration
  name: (identifier) @name) @definition.function

(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [
        (type_identifier) @receiver
        (pointer_type (type_identifier) @receiver)
        (generic_type type: (type_identifier) @receiver)
        (pointer_type (generic_type type: (type_identifier) @receiver))
      ]))
  name: (field_identifier) @name) @definition.method

; A receiver written some other way (`(s *(T))`) still gives the method, unqualified. It comes after the
; pattern above because on a tie (same node, two patterns) the earlier pattern wins.
(method_declaration
  name: (field_identifier) @name) @definition.method

; A lone `type T struct {...}` is the whole declaration, so `type` is in the signature; in a grouped
; `type ( A struct{}; B struct{} )` each spec is its own definition (they would share one node otherwise).
(type_declaration
  .
  (type_spec
    name: (type_identifier) @name
    type: (struct_type))
  .) @definition.struct

(type_declaration
  .
  (type_spec
    name: (type_identifier) @name
    type: (interface_type))
  .) @definition.interface

(type_spec
  name: (type_identifier) @name
  type: (struct_type)) @definition.struct

(type_spec
  name: (type_identifier) @name
  type: (interface_type)) @definition.interface

; The header a completion sees: the package clause and imports.
(source_file (package_clause) @import)
(source_file (import_declaration) @import)
