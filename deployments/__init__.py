"""Ray Serve deployments, the HTTP ingress and the builder of the application graph."""
