"""What a person sees: views, the dashboard socket, exports, rows and tables, the read side, the
registry, waterfalls and who may see them.

Imports anything below it (backends, record, capture); never an integration.
"""
