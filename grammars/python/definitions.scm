; Python definitions. Decorated definitions are matched twice (the def and its decorated_definition);
; codedouble keeps the outer node so the decorators belong to the definition.

(class_definition
  name: (identifier) @name) @definition.class

(decorated_definition
  definition: (class_definition
    name: (identifier) @name)) @definition.class

; A def directly inside a class body is a method; anywhere else it is a function.
(class_definition
  body: (block
    (function_definition
      name: (identifier) @name) @definition.method))

(class_definition
  body: (block
    (decorated_definition
      definition: (function_definition
        name: (identifier) @name)) @definition.method))

(function_definition
  name: (identifier) @name) @definition.function

(decorated_definition
  definition: (function_definition
    name: (identifier) @name)) @definition.function

; The header a completion sees: imports, wherever they sit at module level.
(module (import_statement) @import)
(module (import_from_statement) @import)
(module (future_import_statement) @import)
