"""A Dataverse (Dynamics 365) emulator held to Microsoft's documented behaviour.

Serves Entra ID's token endpoint, the Web API under /api/data/v9.2/, a public portal page at /,
and admin endpoints under /_admin/ (tests and demos only). Import from the modules (`server`,
`admin`, `options`): the web server needs the `demo` extra (starlette, uvicorn), which a
production install does not have, so this package imports nothing on its own.
"""
