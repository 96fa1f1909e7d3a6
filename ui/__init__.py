"""What the dashboard's pages share: cached loaders over services, widgets and plotly figures.

May import ``services``, ``monitor`` and streamlit; never ``db``.
"""
