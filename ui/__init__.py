"""Where Streamlit meets the store and the analysis: cached loaders and plotly figures."""
