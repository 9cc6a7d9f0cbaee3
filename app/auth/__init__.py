"""Who calls the API: token keys and verification (PyJWT), independent of HTTP."""
