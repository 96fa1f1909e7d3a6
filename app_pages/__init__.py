"""One module per screen, run by ``dashboard.py``'s navigation; each reads like a description of its UI.

May import ``ui`` and ``services`` (never ``db``); not named ``pages/``, which Streamlit would also serve on
its own, letting a deep link skip ``dashboard.py`` and the sign-in it checks first.
"""
