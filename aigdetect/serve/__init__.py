"""``aigdetect serve``: the detector as a self-hosted HTTP service (uploads, batching across requests, a page).

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, prometheus-client).
"""
