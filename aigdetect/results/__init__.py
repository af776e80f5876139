"""The results format of a scan, in one place: the columns and their types (``schema``), how paths
and cells are written (``paths``, ``cells``), the writers (``write``), the reader that types every
cell for reports (``read``, ``typed``, ``jsonstream``) and the one that keeps rows' text for
``resume`` and ``merge`` (``previous``).
"""
