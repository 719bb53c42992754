"""The pipelines, run in the ingress: what each calls, in which order, with which budget and fallback."""
