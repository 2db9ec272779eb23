"""First-party consent UI: banner, preferences and partners pages, their CSS and JS."""
