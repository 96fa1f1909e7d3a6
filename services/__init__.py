"""The application layer: one function per use case (import files, save rules then recompute, patient
actions, audited views, the patient's derived view). It owns the transaction and decides what is audited
(the rows themselves are written by ``db`` in that transaction).

May import ``db`` and ``monitor``; never ``ui``, ``app_pages``, ``cli`` or streamlit. Configuration comes in
as a ``services.config.Config`` built once at each entry point.
"""
