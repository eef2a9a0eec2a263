"""`nnlab serve`: a local web app over the run store (Starlette, served by uvicorn; the
`serve` extra). Reads only: it never writes into the store."""
