"""Authorization: the supervisor as an OAuth 2.1 resource server (MCP authorization, RFC 9728, RFC 8707).

``middleware.AuthMiddleware`` wraps the whole HTTP app (the fast path included); ``jwt_verifier`` and
``introspection`` turn a bearer token into a ``shared.principal.Principal``; ``caller`` carries the
principal of the request being served to the places that need it (listings, calls, tasks).
"""
