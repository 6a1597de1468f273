"""The API's routes, one module a resource. Each ``router(runtime)`` reads and changes the
service only through the ``Runtime`` it is given."""
