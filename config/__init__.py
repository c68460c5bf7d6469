"""Settings, their schema and loader, the default tag list, and the technician CLI."""
