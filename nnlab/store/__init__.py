"""The run store on disk: run and sweep folders, their schema, metrics logs, recordings."""
