"""The CLIPasso sketch server (import name ``clipasso_server``): HTTP API v1, job queue and job store."""
