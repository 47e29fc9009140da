"""Report sections: each module is one function from the report's frames (via a :class:`Builder`) to markdown."""
